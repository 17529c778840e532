"""A cross-encoder trained by rankstack.train reranking the tuned hybrid's top 100 on SciFact test, against the
hybrid and, with `--precisions`, against itself in reduced precision on CPU ("int8": dynamic quantisation;
"bf16"): one Experiment with significance.

    MODELS=../shared/models PYTHONPATH=src python bench/rerank_scifact.py bench/out/train/cross-encoder-minilm-3epochs \
        --precisions int8 bf16

The first stages are replayed from bench/fusion_runs.py's cached SciFact test runs; scores are cached beside the
model (FOLDER-scores.sqlite), so a rerun rescores nothing. The three-epoch model of README "Training" is
`bench/recipes/scifact-cross-encoder-cached-runs.yaml` with `epochs: 3` and another `output`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rankstack import Experiment, FromRun, compare  # noqa: E402
from rankstack.datasets import load  # noqa: E402
from rankstack.pipeline.config import parse  # noqa: E402
from rankstack.rerank import CorpusTexts  # noqa: E402
from rankstack.rerank.cross_encoder import CrossEncoder  # noqa: E402

RUNS = REPO / "bench" / "out" / "fusion" / "runs" / "scifact" / "test"
HYBRID = "(bm25 | dense | splade).interpolate([0.3, 0.4, 0.3], norm='zscore')"  # as bench/train_scifact.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a cross-encoder folder saved by rankstack.train")
    parser.add_argument("--depth", type=int, default=100, help="hybrid hits reranked")
    parser.add_argument("--precisions", nargs="*", choices=["int8", "bf16"], default=[],
                        help="also rerank with each of these dtypes on CPU")
    args = parser.parse_args()
    test = load("beir/scifact/test")
    branches = {name: FromRun(RUNS / f"{name}.trec") for name in ("bm25", "dense", "splade")}
    hybrid = parse(HYBRID, branches)
    texts, cache = CorpusTexts(test.corpus), args.model.parent / f"{args.model.name}-scores.sqlite"
    pipelines = {"hybrid (tuned interpolation)": hybrid,
                 f"hybrid top {args.depth} >> {args.model.name}":
                     hybrid % args.depth >> CrossEncoder(args.model, texts, depth=args.depth, cache=cache)}
    for precision in args.precisions:
        pipelines[f"hybrid top {args.depth} >> {args.model.name} ({precision})"] = hybrid % args.depth >> \
            CrossEncoder(args.model, texts, depth=args.depth, cache=cache, device="cpu", dtype=precision)
    measures = ["nDCG@10", "R@100", "RR@10"]
    exp = Experiment(pipelines, test.queries, test.qrels, measures, latency_sample=0)
    print(exp.table())
    if args.precisions:  # each reduced precision against fp32: what it costs
        print(f"\n{', '.join(args.precisions)} against fp32:\n" + compare(exp.runs[1:], test.qrels, measures).to_table())


if __name__ == "__main__":
    main()
