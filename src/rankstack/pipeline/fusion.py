"""Fusion of several stages' runs: reciprocal rank fusion, CombSUM / CombMNZ, weighted interpolation, and
zero-shot fusion that weighs each branch by how far the others corroborate it, without judgments.

    (bm25 | dense).rrf(k=60)                       # reciprocal rank fusion
    (bm25 | dense).combsum(norm="minmax")          # normalised score sum
    (bm25 | dense).interpolate([0.3, 0.7], norm="zscore")
    (bm25 | dense | splade).auto()                 # z-scores weighted by label-free reliability estimates
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import IdList, Run, sort_hits
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage

NORMS = ("minmax", "zscore", "none")
METHODS = ("rrf", "combsum", "combmnz", "auto")


def aligned(runs: Sequence[Run]) -> tuple[list[dict[str, tuple[np.ndarray, np.ndarray]]], Any]:
    """The runs' hits in one shared doc-number space (the runs' own, when they share a doc-id table).

    Each run's distinct documents are looked up once, then its doc numbers are remapped as arrays."""
    if all(r.doc_ids is runs[0].doc_ids for r in runs):
        return [{q: (h.docnos, h.scores) for q, h in r.items()} for r in runs], runs[0].doc_ids
    ids = IdList()
    out = []
    for run in runs:
        unique = np.unique(np.concatenate([np.zeros(0, np.int32), *(h.docnos for h in run.values())]))
        shared = np.array([ids.number(d) for d in run.doc_ids.take(unique)], dtype=np.int32)
        out.append({q: (shared[np.searchsorted(unique, h.docnos)], h.scores) for q, h in run.items()})
    return out, ids


def align(runs: Sequence[Run]) -> list[Run]:
    """The runs over one shared doc-id table, so that fusing them repeatedly skips the id lookups."""
    columns, doc_ids = aligned(runs)
    return [Run(c, doc_ids, name=r.name, presorted=True) for c, r in zip(columns, runs)]


def normalise(scores: np.ndarray, norm: str) -> np.ndarray:
    scores = scores.astype(np.float64)
    if norm == "none" or len(scores) == 0:
        return scores
    if norm == "minmax":
        span = scores.max() - scores.min()
        return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    std = scores.std()
    return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)


def _above_last(scores: np.ndarray) -> np.ndarray:
    return scores - scores.min() if len(scores) else scores


def fuse(runs: Sequence[Run], method: str = "rrf", weights: Sequence[float] | None = None, k: int = 60,
         norm: str = "minmax", name: str | None = None, estimate: bool = True) -> Run:
    """Fuse runs query by query. method: "rrf" (sum of w / (k + rank)), "combsum" (sum of w * normalised
    score), "combmnz" (combsum times the number of runs that retrieved the document), "auto" (combsum with each
    run's weight multiplied by its label-free reliability over these queries, rankstack.pipeline.reliability, unless
    `estimate` is False; normalised scores count from the run's last hit, so that a document a run did not
    retrieve counts as below all it did)."""
    if not runs:
        raise InputError("fusion needs at least one run")
    if method not in METHODS:
        raise InputError(f"unknown fusion method {method!r} (expected one of {', '.join(METHODS)})")
    if norm not in NORMS:
        raise InputError(f"unknown normalisation {norm!r} (expected one of {NORMS})")
    weights = np.ones(len(runs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(runs):
        raise InputError(f"{len(weights)} weights for {len(runs)} runs")
    auto = method == "auto"
    if auto and estimate:
        from rankstack.pipeline.reliability import estimate_reliability

        weights = weights * estimate_reliability(runs).weights
    columns, doc_ids = aligned(runs)
    qids = list(dict.fromkeys(q for run in runs for q in run))
    fused = {}
    for qid in qids:
        parts = [(c[qid], w) for c, w in zip(columns, weights) if qid in c and len(c[qid][0])]
        if not parts:
            fused[qid] = (np.zeros(0, np.int32), np.zeros(0, np.float32))
            continue
        docnos = np.concatenate([p[0][0] for p in parts])
        if method == "rrf":
            contrib = np.concatenate([w / (k + np.arange(1, len(d) + 1)) for (d, _), w in parts])
        elif auto:  # a document a run did not retrieve counts as that run's last one, not its average
            contrib = np.concatenate([w * _above_last(normalise(s, norm)) for (_, s), w in parts])
        else:
            contrib = np.concatenate([w * normalise(s, norm) for (_, s), w in parts])
        unique, inverse = np.unique(docnos, return_inverse=True)
        scores = np.bincount(inverse, weights=contrib, minlength=len(unique))
        if method == "combmnz":
            scores *= np.bincount(inverse, minlength=len(unique))
        fused[qid] = sort_hits(unique, scores.astype(np.float32))
    return Run(fused, doc_ids, name=name or f"{method}({', '.join(r.name for r in runs)})", presorted=True)


class Fusion(Stage):
    """Runs each branch on the same input and fuses their runs (reciprocal rank fusion by default).

    `a | b` builds one; `.rrf()`, `.combsum()`, `.combmnz()`, `.interpolate()`, `.auto()` choose the method.
    """

    def __init__(self, branches: Sequence[Stage], method: str = "rrf", weights: Sequence[float] | None = None,
                 k: int = 60, norm: str = "minmax", open_ended: bool = False, estimate: bool = True):
        if len(branches) < 2:
            raise InputError("fusion needs at least two branches")
        if method not in METHODS:
            raise InputError(f"unknown fusion method {method!r} (expected one of {', '.join(METHODS)})")
        if norm not in NORMS:
            raise InputError(f"unknown normalisation {norm!r} (expected one of {NORMS})")
        if weights is not None and len(weights) != len(branches):
            raise InputError(f"{len(weights)} weights for {len(branches)} branches")
        self.branches = list(branches)
        self.method, self.weights, self.k, self.norm = method, None if weights is None else list(weights), k, norm
        self.open_ended = open_ended  # built by `|`: a further `| c` adds a branch instead of nesting
        self.estimate = bool(estimate)  # "auto": estimate reliability on each batch (else `weights` are final)
        if method == "auto" and not self.estimate and weights is None:
            raise InputError("auto fusion without estimation needs weights (see Fusion.calibrate)")
        self.first_stage = all(b.first_stage for b in self.branches)

    def rrf(self, k: int = 60, weights: Sequence[float] | None = None) -> "Fusion":
        return Fusion(self.branches, "rrf", weights, k=k)

    def combsum(self, norm: str = "minmax", weights: Sequence[float] | None = None) -> "Fusion":
        return Fusion(self.branches, "combsum", weights, norm=norm)

    def combmnz(self, norm: str = "minmax", weights: Sequence[float] | None = None) -> "Fusion":
        return Fusion(self.branches, "combmnz", weights, norm=norm)

    def interpolate(self, weights: Sequence[float], norm: str = "minmax") -> "Fusion":
        """Weighted sum of normalised scores (CombSUM with weights)."""
        return Fusion(self.branches, "combsum", weights, norm=norm)

    def auto(self, norm: str = "zscore", weights: Sequence[float] | None = None, estimate: bool = True) -> "Fusion":
        """Zero-shot fusion: normalised scores summed with weights estimated without judgments, on the queries
        fused together, from how far the other branches corroborate each branch and how well each recognises
        the others' results (rankstack.pipeline.reliability); `weights` multiply the estimates (a prior).
        `estimate=False` uses `weights` as they are (what `calibrate` returns)."""
        return Fusion(self.branches, "auto", weights, norm=norm, estimate=estimate)

    def calibrate(self, queries: Queries, run: Run | None = None) -> "Fusion":
        """This auto fusion with its weights estimated once, on `queries` (no judgments needed), and then kept:
        results for a query no longer depend on the queries searched with it. `.reliability` holds the estimate."""
        from rankstack.pipeline.reliability import estimate_reliability

        if self.method != "auto":
            raise InputError(f"calibrate applies to auto fusion, not {self.method!r}: use .auto().calibrate(...)")
        reliability = estimate_reliability([branch(queries, run) for branch in self.branches])
        prior = np.ones(len(self.branches)) if self.weights is None or not self.estimate else np.asarray(self.weights)
        weights = [round(float(w), 4) for w in prior * reliability.weights]
        calibrated = Fusion(self.branches, "auto", weights, norm=self.norm, estimate=False)
        calibrated.reliability = reliability
        return calibrated

    def tune(self, queries: Queries, qrels, run: Run | None = None, measure: str = "nDCG@10", step: float = 0.1,
             ks: Sequence[int] = (60,)) -> "Fusion":
        """This fusion with the weights (and RRF k among `ks`) that maximise `measure` on a development split.

        Each branch runs once on `queries`; the grid (rankstack.pipeline.tuning) only re-fuses. The result
        is printed in `.tuning` (a GridSearch with every trial).
        """
        from rankstack.pipeline.tuning import grid_search

        runs = [branch(queries, run) for branch in self.branches]
        search = grid_search(runs, qrels, self.method, measure, step, ks, self.norm)
        tuned = Fusion(self.branches, self.method, list(search.weights), k=search.k, norm=self.norm)
        tuned.tuning = search
        return tuned

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        runs = [branch(queries, run) for branch in self.branches]
        return fuse(runs, self.method, self.weights, self.k, self.norm, estimate=self.estimate)

    def at_depth(self, k: int) -> None:
        return None  # a fused ranking's top k depends on each branch's full depth: cut after fusing

    def config(self) -> dict[str, Any]:
        out = {"method": self.method, "weights": self.weights, "k": self.k, "norm": self.norm,
               "branches": [repr(b) for b in self.branches]}
        if not self.estimate:
            out["estimate"] = False
        return out

    def __repr__(self) -> str:
        inner = " | ".join(repr(b) for b in self.branches)
        args = {"rrf": f"k={self.k}", "auto": "" if self.norm == "zscore" else f"norm={self.norm!r}"}.get(
            self.method, f"norm={self.norm!r}")
        if self.weights is not None:
            args += f"{', ' if args else ''}weights={list(self.weights)}"
        if self.method == "auto" and not self.estimate:
            args += ", estimate=False"
        return f"({inner}).{self.method}({args})"
