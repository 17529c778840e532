"""Tune a fusion's weights (and RRF's k) by grid search on a development split.

    tuned = (bm25 | dense).interpolate([0.5, 0.5]).tune(dev_queries, dev_qrels, measure="nDCG@10")
    tuned.weights                  # best weights on dev; apply `tuned` to the test queries
    search = grid_search(runs, dev_qrels, method="rrf", ks=[10, 60, 100])   # on precomputed runs

Each branch runs once on the dev queries; every grid point only re-fuses those runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from rankstack.data.run import Run
from rankstack.errors import InputError


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """All weight vectors of `n` non-negative multiples of `step` that sum to 1, each branch weighted."""
    if n < 2:
        raise InputError("a weight grid needs at least two runs")
    units = round(1 / step)
    if units < n or abs(units * step - 1) > 1e-9:
        raise InputError(f"grid step {step} must divide 1 into at least {n} parts")
    return [tuple(round(c / units, 10) for c in combo) for combo in _compositions(units, n)]


def _compositions(total: int, parts: int):
    """Ways to write `total` as an ordered sum of `parts` positive integers."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        yield tuple(b - a for a, b in zip(bounds, bounds[1:]))


@dataclass
class GridSearch:
    """The outcome of a grid search: the best setting and every setting's score (in grid order)."""
    measure: str
    weights: tuple[float, ...]
    k: int
    score: float
    trials: list[tuple[tuple[float, ...], int, float]] = field(repr=False)

    def to_table(self) -> str:
        rows = [f"{'weights':<30} {'k':>5} {self.measure:>10}"]
        for weights, k, score in sorted(self.trials, key=lambda t: -t[2]):
            rows.append(f"{str(list(weights)):<30} {k:>5} {score:>10.4f}")
        return "\n".join(rows)


def grid_search(runs: Sequence[Run], qrels: Mapping[str, Mapping[str, int]], method: str = "combsum",
                measure: str = "nDCG@10", step: float = 0.1, ks: Sequence[int] = (60,), norm: str = "minmax",
                weights: Sequence[Sequence[float]] | None = None) -> GridSearch:
    """Fuse `runs` with every weight vector (and, for RRF, every k) and keep the best by `measure`.

    `weights` replaces the default grid (`weight_grid(len(runs), step)`); ties keep the earliest setting, so
    the default grid prefers settings listed first. Judged queries a run misses count as 0.
    """
    from rankstack.evaluate import evaluate
    from rankstack.evaluate.measures import parse_measure
    from rankstack.pipeline.fusion import align, fuse

    grid = [tuple(map(float, w)) for w in weights] if weights is not None else weight_grid(len(runs), step)
    if any(len(w) != len(runs) for w in grid):
        raise InputError(f"every weight vector needs {len(runs)} entries")
    ks = list(ks) if method == "rrf" else [60]
    runs = align(runs)
    cutoff = parse_measure(measure).params.get("cutoff")  # evaluate only the ranks the measure reads
    trials = []
    for w, k in itertools.product(grid, ks):
        fused = fuse(runs, method, w, k=k, norm=norm)
        fused = fused.cut(cutoff) if cutoff else fused
        score = evaluate(fused, qrels, [measure], complete=True).value(measure)
        trials.append((w, k, score))
    best = max(range(len(trials)), key=lambda i: (trials[i][2], -i))
    w, k, score = trials[best]
    return GridSearch(measure, w, k, score, trials)

