"""Branch runs for the zero-shot fusion study, computed once and cached as TREC files (bench/out/fusion/runs):

SciFact (test and train queries): BM25, dense all-MiniLM-L6-v2, SPLADE-tiny (the indexes of
bench/experiment_scifact.py), and degraded branches:
- "BM25 shuffled": BM25 over an index whose document ids were shuffled (each text filed under another id);
- "Dense half": dense retrieval over an index holding a random half of the corpus (the dense run with the hits
  of the other half removed: the same scores such an index gives, since dense scores do not depend on the rest);
- "BM25 titles": BM25 over the titles alone (a weak lexical branch), and "SPLADE titles" likewise, to stress the
  case of two correlated weak branches beside one strong one.
TREC DL 2019 passages (a reranking collection): the BM25 top 100 and its rescoring by dense and SPLADE.

    PYTHONPATH=src python bench/fusion_runs.py [--collections scifact dl19]
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

from rankstack import BM25, Run  # noqa: E402
from rankstack.data.corpus import Document  # noqa: E402
from rankstack.datasets import load  # noqa: E402

OUT = REPO / "bench" / "out" / "fusion"
SCIFACT_INDEXES = REPO / "bench" / "out" / "experiment" / "scifact"


def cached(path: Path, make) -> Run:
    if path.exists():
        return Run.read(path, name=path.stem)
    run = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    run.write_trec(tmp)
    os.replace(tmp, path)
    return Run.read(path, name=path.stem)


def drop_half(run: Run, doc_ids: list[str], seed: int = 0) -> Run:
    """The run without the hits of a random half of the corpus (a retriever over a half index)."""
    keep = set(np.random.default_rng(seed).permutation(doc_ids)[: len(doc_ids) // 2].tolist())
    return Run.from_dict({q: [(d, s) for d, s in run.hits(q) if d in keep] for q in run}, name="half")


def scifact(models: Path, splits=("test", "train")) -> dict[str, dict[str, Run]]:
    from rankstack.encoders import SpladeEncoder
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.sparse import LearnedSparse

    test = load("beir/scifact/test")
    docs = list(test.corpus)
    ids = [d.id for d in docs]
    out = OUT / "indexes"
    bm25 = BM25(SCIFACT_INDEXES / "bm25", progress=False)
    dense = Dense(SCIFACT_INDEXES / "minilm")
    splade = LearnedSparse(SCIFACT_INDEXES / "splade-tiny")
    perm = np.random.default_rng(0).permutation(len(docs))
    shuffled = _open_or_build(out / "bm25-shuffled",
                              [Document(ids[perm[i]], d.text, d.title) for i, d in enumerate(docs)])
    titles = _open_or_build(out / "bm25-titles", [Document(d.id, d.title or d.text[:80]) for d in docs])
    splade_titles_path = out / "splade-titles"
    if not (splade_titles_path / "manifest.json").exists():
        LearnedSparse.build([Document(d.id, d.title or d.text[:80]) for d in docs], splade_titles_path,
                            SpladeEncoder(models / "splade-tiny-msmarco"), overwrite=True)
    splade_titles = LearnedSparse(splade_titles_path)
    runs: dict[str, dict[str, Run]] = {}
    for split in splits:
        queries = load(f"beir/scifact/{split}").queries
        folder = OUT / "runs" / "scifact" / split
        r = {"BM25": cached(folder / "bm25.trec", lambda: bm25(queries)),
             "Dense": cached(folder / "dense.trec", lambda: dense(queries)),
             "SPLADE": cached(folder / "splade.trec", lambda: splade(queries)),
             "BM25 shuffled": cached(folder / "bm25-shuffled.trec", lambda: shuffled(queries)),
             "BM25 titles": cached(folder / "bm25-titles.trec", lambda: titles(queries)),
             "SPLADE titles": cached(folder / "splade-titles.trec", lambda: splade_titles(queries))}
        r["Dense half"] = cached(folder / "dense-half.trec", lambda: drop_half(r["Dense"], ids))
        runs[split] = r
    return runs


def _open_or_build(path: Path, docs: list[Document]) -> BM25:
    if (path / "manifest.json").exists():
        return BM25(path, progress=False)
    return BM25.build(docs, path, progress=False, overwrite=True)


def dl19(models: Path, data: Path) -> dict[str, Run]:
    from rankstack import FromRun
    from rankstack.encoders import DenseEncoder, SpladeEncoder
    from rankstack.rerank import CorpusTexts
    from rankstack.rerank.bi_encoder import BiEncoder

    os.environ.setdefault("RANKSTACK_DATA", str(data))
    ds = load("msmarco-passage/trec-dl-2019")
    texts = CorpusTexts(ds.corpus)
    bm25 = FromRun(ds.root / ds.run_file)
    folder = OUT / "runs" / "dl19"
    return {"BM25": cached(folder / "bm25.trec", lambda: bm25(ds.queries)),
            "Dense": cached(folder / "dense.trec", lambda: (bm25 >> BiEncoder(
                DenseEncoder(models / "sentence-transformers__all-MiniLM-L6-v2"), texts))(ds.queries)),
            "SPLADE": cached(folder / "splade.trec", lambda: (bm25 >> BiEncoder(
                SpladeEncoder(models / "splade-tiny-msmarco"), texts))(ds.queries))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--collections", nargs="+", default=["scifact", "dl19"])
    args = parser.parse_args()
    if "dl19" in args.collections:
        print({k: v for k, v in dl19(args.models, args.data).items()})
    if "scifact" in args.collections:
        print({s: list(r) for s, r in scifact(args.models).items()})


if __name__ == "__main__":
    main()
