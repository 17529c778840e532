"""The SciFact models trained by bench/train_scifact.py, loaded in sentence-transformers and in rankstack: the largest
score difference between the two (cross-encoder: sigmoid scores of query-document pairs; dense: document and query
vectors; SPLADE: sparse document and query vectors from SparseEncoder). The ColBERT head is saved as a Stanford ColBERT
folder, which sentence-transformers does not load (PyLate would): its token vectors from MultiVectorEncoder (what
LateInteraction indexes) are compared with the training model's (rankstack.train ColBERTModel with the saved head).

    PYTHONPATH=src python bench/train_parity.py [--pairs 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from rankstack.datasets import load  # noqa: E402

OUT = REPO / "bench" / "out" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=500, help="query-document pairs (and documents) compared")
    args = parser.parse_args()
    import sentence_transformers as st

    test = load("beir/scifact/test")
    rng = np.random.default_rng(0)
    docs = [d.contents for d in test.corpus]
    queries = list(test.queries.values())
    doc_sample = [docs[i] for i in rng.choice(len(docs), args.pairs, replace=False)]
    pairs = [(queries[i % len(queries)], d) for i, d in enumerate(doc_sample)]
    folder = OUT / "cross-encoder-minilm"
    if (folder / "training.json").exists():
        from rankstack.rerank.cross_encoder import CrossEncoder

        ours = CrossEncoder(folder, device="cpu", cache=False, progress=False).predict(pairs)
        theirs = st.CrossEncoder(str(folder), device="cpu").predict(pairs, show_progress_bar=False)
        print(f"cross-encoder ({folder.name}): {len(pairs)} pairs, max |rankstack - sentence-transformers| = "
              f"{np.abs(np.asarray(ours) - np.asarray(theirs)).max():.2e}")
    for name in ("minilm-unfiltered", "minilm-filtered"):
        folder = OUT / name
        if not (folder / "training.json").exists():
            continue
        from rankstack.encoders import DenseEncoder

        ours_enc = DenseEncoder(folder, device="cpu", progress=False)
        theirs_enc = st.SentenceTransformer(str(folder), device="cpu")
        d = np.abs(ours_enc.encode_documents(doc_sample) - theirs_enc.encode(doc_sample, show_progress_bar=False))
        q = np.abs(ours_enc.encode_queries(queries) - theirs_enc.encode(queries, show_progress_bar=False))
        print(f"dense ({name}): {len(doc_sample)} documents and {len(queries)} queries, max |rankstack - "
              f"sentence-transformers| = {max(d.max(), q.max()):.2e}")
    folder = OUT / "splade-tiny"
    if (folder / "training.json").exists():
        from rankstack.encoders import SpladeEncoder

        ours_sp = SpladeEncoder(folder, device="cpu", progress=False)
        theirs_sp = st.SparseEncoder(str(folder), device="cpu")
        worst = 0.0
        for ours_m, theirs_m in ((ours_sp.encode_documents(doc_sample), theirs_sp.encode_document(doc_sample)),
                                 (ours_sp.encode_queries(queries), theirs_sp.encode_query(queries))):
            theirs_m = theirs_m.to_dense().cpu().numpy() if hasattr(theirs_m, "to_dense") else np.asarray(theirs_m)
            worst = max(worst, float(np.abs(ours_m.toarray() - theirs_m).max()))
        print(f"SPLADE ({folder.name}): {len(doc_sample)} documents and {len(queries)} queries, max |rankstack - "
              f"sentence-transformers| = {worst:.2e}")
    folder = OUT / "colbert-minilm"
    if (folder / "training.json").exists():
        print(f"ColBERT ({folder.name}): {len(doc_sample)} documents and {len(queries)} queries, max |inference - "
              f"training model| over kept token vectors = {_colbert_gap(folder, doc_sample, queries):.2e}")


def _colbert_gap(folder: Path, docs: list[str], queries: list[str]) -> float:
    """Largest difference between MultiVectorEncoder's token vectors and the training model's (same kept tokens)."""
    import torch

    from rankstack.encoders import MultiVectorEncoder
    from rankstack.encoders.multivector import _load_linear
    from rankstack.train.models import build_model

    ours = MultiVectorEncoder(folder, progress=False)
    config = json.loads((folder / "colbert_config.json").read_text())
    trained = build_model("colbert", folder, dimension=config["dim"], query_length=config["query_maxlen"],
                          document_max_length=config["doc_maxlen"]).eval()
    trained.linear.weight.data = _load_linear(folder)  # the saved head, read as LateInteraction reads it
    worst = 0.0
    for texts, mine, theirs in ((docs, ours.encode_documents, trained.encode_documents),
                                (queries, ours.encode_queries, trained.encode_queries)):
        for start in range(0, len(texts), 16):
            chunk = texts[start:start + 16]
            with torch.no_grad():
                vectors, keep = theirs(chunk)
            for row, v, k in zip(mine(chunk), vectors, keep):
                reference = v[k].numpy()
                if row.shape != reference.shape:
                    raise SystemExit(f"ColBERT: {row.shape} token vectors against {reference.shape}")
                worst = max(worst, float(np.abs(row - reference).max()))
    return worst


if __name__ == "__main__":
    main()
