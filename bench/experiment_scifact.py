"""SciFact test: BM25, BM25+RM3, SPLADE-tiny, dense all-MiniLM-L6-v2, dense+Rocchio and their fusions in one
experiment table with significance, plus fusion weights tuned on SciFact's train split; HTML report with plots.

    PYTHONPATH=src python bench/experiment_scifact.py            # indexes cached in bench/out/experiment/scifact

Needs ../shared/models (or --models DIR) with all-MiniLM-L6-v2 and splade-tiny-msmarco. Encoding the 5,183
documents takes a few minutes on 2 CPU cores (once; the indexes are reused).
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

from rankstack import BM25, Experiment, compare  # noqa: E402
from rankstack.datasets import load  # noqa: E402
from rankstack.encoders import DenseEncoder, SpladeEncoder  # noqa: E402
from rankstack.retrieve.dense import Dense  # noqa: E402
from rankstack.retrieve.dense_prf import DenseRocchio  # noqa: E402
from rankstack.retrieve.rm3 import RM3  # noqa: E402
from rankstack.retrieve.sparse import LearnedSparse  # noqa: E402

MEASURES = ["nDCG@10", "R@100", "RR@10"]


def open_or_build(stage, path: Path, build):
    return stage(path) if (path / "manifest.json").exists() else build(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "experiment" / "scifact")
    parser.add_argument("--latency-sample", type=int, default=30)
    args = parser.parse_args()
    test, train = load("beir/scifact/test"), load("beir/scifact/train")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    bm25 = open_or_build(lambda p: BM25(p, progress=False), out / "bm25",
                         lambda p: BM25.build(test.corpus, p, progress=False))
    splade = open_or_build(LearnedSparse, out / "splade-tiny",
                           lambda p: LearnedSparse.build(test.corpus, p, SpladeEncoder(args.models / "splade-tiny-msmarco")))
    dense = open_or_build(Dense, out / "minilm",
                          lambda p: Dense.build(test.corpus, p, DenseEncoder(args.models / "sentence-transformers__all-MiniLM-L6-v2"),
                                                store_vectors="float32"))
    bm25.progress = False
    singles = {"BM25": bm25, "BM25+RM3": RM3(bm25), "SPLADE-tiny": splade, "Dense MiniLM": dense,
               "Dense+Rocchio": DenseRocchio(dense)}
    fused3 = (bm25 | dense | splade)
    # Weights tuned on the train split (809 queries), applied to test.
    tuned = fused3.interpolate([1 / 3] * 3, norm="zscore").tune(train.queries, train.qrels, measure="nDCG@10",
                                                                step=0.1)
    tuned_rrf = fused3.rrf().tune(train.queries, train.qrels, measure="nDCG@10", step=0.1, ks=[10, 30, 60, 100])
    pipelines = {**singles,
                 "RRF(BM25, Dense)": (bm25 | dense).rrf(),
                 "RRF(BM25, SPLADE)": (bm25 | splade).rrf(),
                 "RRF(Dense, SPLADE)": (dense | splade).rrf(),
                 "RRF(BM25, Dense, SPLADE)": fused3.rrf(),
                 "CombSUM-z(BM25, Dense, SPLADE)": fused3.combsum(norm="zscore"),
                 f"Interp-z tuned on train {list(tuned.weights)}": tuned,
                 f"RRF tuned on train {list(tuned_rrf.weights)} k={tuned_rrf.k}": tuned_rrf}
    exp = Experiment(pipelines, test.queries, test.qrels, MEASURES, latency_sample=args.latency_sample)
    print(exp.table())
    # Does fusing all three beat each alone? The three-way RRF as the baseline, against each single stage.
    names = list(pipelines)
    three = names.index("RRF(BM25, Dense, SPLADE)")
    versus = compare([exp.runs[three]] + [exp.runs[names.index(n)] for n in ("BM25", "SPLADE-tiny", "Dense MiniLM")],
                     test.qrels, MEASURES)
    print("\nRRF(BM25, Dense, SPLADE) as the baseline, against each stage alone:")
    print(versus.to_table())
    report = exp.report(out / "report")
    (out / "versus_single.txt").write_text(versus.to_table())
    (out / "tuning.json").write_text(json.dumps({"interp": tuned.tuning.to_table(), "rrf": tuned_rrf.tuning.to_table()}))
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
