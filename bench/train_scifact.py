"""SciFact: models trained on the train split (809 queries) with rankstack.train, evaluated on the 300 test queries
against the zero-shot models and fusions, in one experiment table with significance.

    MODELS=/path/to/shared/models PYTHONPATH=src python bench/train_scifact.py [--train] [--only NAME ...]

`--train` first runs each recipe of bench/recipes/scifact-*.yaml (`rankstack train RECIPE --no-eval`, one after
another; a finished one is skipped, an interrupted one resumes); `--train-only` stops there. Needs the indexes of
bench/experiment_scifact.py (bench/out/experiment/scifact), or with `--cached-runs` the test runs of
bench/fusion_runs.py for BM25, dense and SPLADE-tiny. Writes bench/out/train/scifact.txt (tables, wall times,
non-zeros) and bench/out/train/scifact.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from rankstack import BM25, Experiment, FromRun, RankstackError, compare  # noqa: E402
from rankstack.datasets import load  # noqa: E402

RECIPES = REPO / "bench" / "recipes"
OUT = REPO / "bench" / "out" / "train"
INDEXES = REPO / "bench" / "out" / "experiment" / "scifact"
RUNS_CACHE = REPO / "bench" / "out" / "fusion" / "runs" / "scifact" / "test"
MEASURES = ["nDCG@10", "R@100", "RR@10"]
#: recipe name -> output folder (as the recipe says), in training order
RUNS = {"scifact-minilm-unfiltered": "minilm-unfiltered", "scifact-minilm-filtered": "minilm-filtered",
        "scifact-splade": "splade-tiny", "scifact-colbert": "colbert-minilm",
        "scifact-cross-encoder": "cross-encoder-minilm"}
PLAID = {"nbits": 2, "store_vectors": "float16", "rescore": True}


def train_all(names: list[str], cached_runs: bool = False) -> None:
    """Run each recipe (its `-cached-runs` variant, first stages replayed from cached train runs, if asked)."""
    for name in names:
        recipe = RECIPES / f"{name}.yaml"
        if cached_runs and (RECIPES / f"{name}-cached-runs.yaml").exists():
            recipe = RECIPES / f"{name}-cached-runs.yaml"
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rankstack.cli", "train", str(recipe), "--no-eval", "--quiet"],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        print(f"   {time.perf_counter() - start:.0f}s (mining and training, including any earlier part)", flush=True)


def nonzeros(model: str | Path, docs: list[str], queries: list[str]) -> tuple[float, float]:
    """Mean non-zeros of SPLADE document and query vectors."""
    from rankstack.encoders import SpladeEncoder

    enc = SpladeEncoder(model, progress=False)
    d, q = enc.encode_documents(docs), enc.encode_queries(queries)
    return float(d.getnnz(axis=1).mean()), float(q.getnnz(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="run the recipes first")
    parser.add_argument("--only", nargs="+", choices=list(RUNS), help="train only these recipes")
    parser.add_argument("--train-only", action="store_true", help="train, then stop (no evaluation)")
    parser.add_argument("--models", type=Path,
                        default=Path(os.environ.get("MODELS", REPO.parent / "shared" / "models")))
    parser.add_argument("--nonzero-sample", type=int, default=1000)
    parser.add_argument("--rerank-depth", type=int, default=100, help="hybrid hits the cross-encoder reranks")
    parser.add_argument("--cached-runs", action="store_true",
                        help="BM25, dense and SPLADE-tiny from the runs cached by bench/fusion_runs.py (train: "
                             "the recipes' -cached-runs variants; test: the baselines)")
    args = parser.parse_args()
    os.environ["MODELS"] = str(args.models)
    if args.train or args.train_only:
        train_all(args.only or list(RUNS), args.cached_runs)
    if args.train_only:
        return

    from rankstack.pipeline.config import parse
    from rankstack.rerank import CorpusTexts
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.sparse import LearnedSparse
    from rankstack.train.recipe import trained_stage

    test = load("beir/scifact/test")
    corpus = test.corpus
    texts = CorpusTexts(corpus)
    if args.cached_runs:  # the branch runs of bench/fusion_runs.py: the same results, no index or encoder needed
        bm25, dense, splade = (FromRun(RUNS_CACHE / f"{name}.trec") for name in ("bm25", "dense", "splade"))
    else:
        bm25 = BM25(INDEXES / "bm25", progress=False)
        dense = Dense(INDEXES / "minilm")
        splade = LearnedSparse(INDEXES / "splade-tiny")
    hybrid = parse("(bm25 | dense | splade).interpolate([0.3, 0.4, 0.3], norm='zscore')",
                   {"bm25": bm25, "dense": dense, "splade": splade})
    minilm = args.models / "sentence-transformers__all-MiniLM-L6-v2"
    reranked = f"hybrid top {args.rerank_depth} >> cross-encoder (trained)"
    pipelines = {"BM25": bm25, "Dense MiniLM (zero-shot)": dense, "SPLADE-tiny (zero-shot)": splade,
                 "RRF(BM25, Dense, SPLADE)": (bm25 | dense | splade).rrf(),
                 "hybrid: interpolation tuned on train": hybrid}
    trained = {name: OUT / folder for name, folder in RUNS.items() if (OUT / folder / "training.json").exists()}
    if "scifact-cross-encoder" in trained:
        from rankstack.rerank.cross_encoder import CrossEncoder  # scores kept on disk: a rerun rescores nothing

        pipelines[reranked] = hybrid % args.rerank_depth >> CrossEncoder(
            trained["scifact-cross-encoder"], texts, depth=args.rerank_depth, cache=OUT / "cross-encoder-scores.sqlite")
    for name, label in (("scifact-minilm-unfiltered", "Dense MiniLM fine-tuned, no FN filter"),
                        ("scifact-minilm-filtered", "Dense MiniLM fine-tuned, FN filtered")):
        if name in trained:
            pipelines[label] = trained_stage("dense", trained[name], corpus, index=trained[name] / "index")
    if "scifact-splade" in trained:
        pipelines["SPLADE-tiny fine-tuned"] = trained_stage("splade", trained["scifact-splade"], corpus,
                                                            index=trained["scifact-splade"] / "index")
    if "scifact-colbert" in trained:
        untrained = OUT / "minilm-tokens-plaid"
        pipelines["LateInteraction MiniLM tokens (untrained)"] = _late(untrained, corpus, minilm)
        pipelines["LateInteraction ColBERT head (trained)"] = trained_stage(
            "colbert", trained["scifact-colbert"], corpus, index=trained["scifact-colbert"] / "index",
            index_options=PLAID)
    exp = Experiment(pipelines, test.queries, test.qrels, MEASURES, latency_sample=0)
    names = list(pipelines)
    lines = [exp.table(), ""]
    pairs = [("Dense MiniLM fine-tuned, no FN filter", "Dense MiniLM (zero-shot)"),
             ("Dense MiniLM fine-tuned, FN filtered", "Dense MiniLM (zero-shot)"),
             ("Dense MiniLM fine-tuned, FN filtered", "Dense MiniLM fine-tuned, no FN filter"),
             ("SPLADE-tiny fine-tuned", "SPLADE-tiny (zero-shot)"),
             ("LateInteraction ColBERT head (trained)", "LateInteraction MiniLM tokens (untrained)"),
             (reranked, "hybrid: interpolation tuned on train"),
             (reranked, "RRF(BM25, Dense, SPLADE)")]
    for new, old in pairs:
        if new in names and old in names:
            versus = compare([exp.runs[names.index(old)], exp.runs[names.index(new)]], test.qrels, MEASURES)
            lines += [f"{new} against {old}:", versus.to_table(), ""]
    report = {}
    for name, folder in trained.items():
        info = json.loads((folder / "training.json").read_text())
        mining = json.loads((folder / "mining.json").read_text())["mining"] if (folder / "mining.json").exists() else {}
        report[name] = {"seconds": info["seconds"], "cpu_seconds": info.get("cpu_seconds"),
                        "hardware": info["hardware"], "steps": info["steps"],
                        "examples_seen": info["examples_seen"], "resumed_from": info["resumed_from"],
                        "mining_seconds": mining.get("seconds"), "examples": mining.get("examples"),
                        "filtered": mining.get("filtered_as_false_negatives"),
                        "skipped_queries": mining.get("skipped_queries")}
        lines.append(f"{name}: trained {info['steps']} steps ({info['examples_seen']} examples) in {info['seconds']}s "
                     f"wall, {info.get('cpu_seconds')}s CPU, on {info['hardware']}; mining {mining.get('seconds')}s, "
                     f"{mining.get('examples')} examples, "
                     f"{mining.get('filtered_as_false_negatives')} candidates filtered, "
                     f"{mining.get('skipped_queries')} queries skipped")
    if "scifact-splade" in trained:
        docs = [d.contents for d in corpus]
        sample = [docs[i] for i in np.random.default_rng(0).choice(len(docs), args.nonzero_sample, replace=False)]
        queries = list(test.queries.values())
        before = nonzeros(args.models / "splade-tiny-msmarco", sample, queries)
        after = nonzeros(trained["scifact-splade"], sample, queries)
        report["splade_nonzeros"] = {"before": before, "after": after}
        lines.append(f"SPLADE-tiny non-zeros (mean over {len(sample)} sampled documents / the 300 test queries): "
                     f"zero-shot {before[0]:.1f} / {before[1]:.1f}, fine-tuned {after[0]:.1f} / {after[1]:.1f}")
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scifact.txt").write_text(text + "\n")
    (OUT / "scifact.json").write_text(json.dumps({"table": json.loads(exp.to_json()), "training": report}, indent=2))


def _late(path: Path, corpus, model: Path):
    """Untrained MiniLM token vectors (no projection) through a PLAID index with the trained head's settings."""
    from rankstack.encoders import MultiVectorEncoder
    from rankstack.retrieve.late import LateInteraction

    try:
        return LateInteraction(path, str(model), rescore=True)
    except (RankstackError, OSError):  # not built yet, or with another model or format
        pass
    return LateInteraction.build(corpus, path, MultiVectorEncoder(model, projection=None), overwrite=True, **PLAID)


if __name__ == "__main__":
    main()
