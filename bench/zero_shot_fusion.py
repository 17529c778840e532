"""Zero-shot fusion (`Fusion.auto()`) against RRF, CombSUM and interpolation tuned on train, on SciFact test and on
SciFact with one branch degraded, with significance against the best single branch of each setting; plus stress
settings (a weak lexical pair beside a strong dense branch; TREC DL 2019 rescoring).

    PYTHONPATH=src python bench/fusion_runs.py --models M --data D     # branch runs, cached once
    PYTHONPATH=src python bench/zero_shot_fusion.py                     # writes bench/out/fusion/table.md

Every fusion reads the same cached branch runs (FromRun stages), so the rows differ only by the fusion.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rankstack import FromRun, Run, compare  # noqa: E402
from rankstack.datasets import load  # noqa: E402
from rankstack.pipeline.reliability import estimate_reliability  # noqa: E402

RUNS = REPO / "bench" / "out" / "fusion" / "runs"
MEASURES = ["nDCG@10", "R@100", "RR@10"]
FILES = {"BM25": "bm25.trec", "Dense": "dense.trec", "SPLADE": "splade.trec", "BM25 shuffled": "bm25-shuffled.trec",
         "Dense half": "dense-half.trec", "BM25 titles": "bm25-titles.trec", "SPLADE titles": "splade-titles.trec"}
SCIFACT = {"SciFact": ["BM25", "Dense", "SPLADE"],
           "SciFact, BM25 over a shuffled index": ["BM25 shuffled", "Dense", "SPLADE"],
           "SciFact, dense over half the corpus": ["BM25", "Dense half", "SPLADE"],
           "SciFact, weak lexical pair (titles only) + dense": ["BM25 titles", "SPLADE titles", "Dense"],
           "SciFact, BM25 + dense": ["BM25", "Dense"]}


def merged(names: list[str]) -> dict[str, FromRun]:
    """A FromRun per branch holding its test and train runs (disjoint query ids), for tuning on train."""
    out = {}
    for name in names:
        test, train = (Run.read(RUNS / "scifact" / s / FILES[name]) for s in ("test", "train"))
        out[name] = FromRun(Run.from_dict({**test.to_dict(), **train.to_dict()}, name=name))
    return out


def rows(title: str, branches: dict[str, FromRun], queries, qrels, train=None) -> list[str]:
    names = list(branches)
    stages = list(branches.values())
    first = stages[0]
    for s in stages[1:]:
        first = first | s
    fused = {"RRF": first.rrf(), "CombSUM z-score": first.combsum(norm="zscore")}
    if train is not None:
        tuned = first.interpolate([1.0] * len(stages), norm="zscore").tune(train.queries, train.qrels, step=0.1)
        fused[f"interpolation tuned on train {list(tuned.weights)}"] = tuned
    auto = first.auto()
    runs = {n: b(queries) for n, b in branches.items()}
    reliability = estimate_reliability(list(runs.values()))
    fused[f"auto (weights {[round(float(w), 2) for w in reliability.weights]})"] = auto
    runs.update({n: f(queries) for n, f in fused.items()})
    for n, r in runs.items():
        r.name = n
    single = compare([runs[n] for n in names], qrels, MEASURES)
    best = max(range(len(names)), key=lambda i: single.results[i]["nDCG@10"].mean)
    order = [names[best]] + [n for n in runs if n != names[best]]
    comparison = compare([runs[n] for n in order], qrels, MEASURES)
    out = []
    for i, n in enumerate(order):
        cells = []
        for m in MEASURES:
            r = comparison.results[i][m]
            cells.append(f"{r.mean:.4f}{'†' if r.significant else ''}")
        delta = comparison.results[i]["nDCG@10"].delta
        label = f"{n} (best branch)" if i == 0 else n
        out.append(f"| {title} | {label} | {' | '.join(cells)} | {'' if i == 0 else f'{delta:+.4f}'} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--no-dl19", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RANKSTACK_DATA", str(args.data))
    test, train = load("beir/scifact/test"), load("beir/scifact/train")
    lines = ["| setting | pipeline | nDCG@10 | R@100 | RR@10 | Δ nDCG@10 vs best branch |",
             "|---|---|---|---|---|---|"]
    for title, names in SCIFACT.items():
        lines += rows(title, merged(names), test.queries, test.qrels, train)
    if not args.no_dl19:
        dl19 = load("msmarco-passage/trec-dl-2019")
        branches = {n: FromRun(RUNS / "dl19" / f) for n, f in (("BM25", "bm25.trec"), ("Dense", "dense.trec"),
                                                                ("SPLADE", "splade.trec"))}
        lines += rows("TREC DL 2019 (BM25 top 100 rescored)", branches, dl19.queries, dl19.qrels)
        lines += rows("TREC DL 2019, BM25 + dense", {n: branches[n] for n in ("BM25", "Dense")}, dl19.queries,
                      dl19.qrels)
    text = "\n".join(lines)
    print(text)
    (RUNS.parent / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
