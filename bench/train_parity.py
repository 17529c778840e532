"""The SciFact models trained by bench/train_scifact.py, loaded in sentence-transformers and in rankstack: the largest
score difference between the two (cross-encoder: sigmoid scores of query-document pairs; dense: document and query
vectors; SPLADE: sparse document and query vectors from SparseEncoder).

    PYTHONPATH=src python bench/train_parity.py [--pairs 500]
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
