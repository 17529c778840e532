"""Label-free reliability of fusion branches, from the runs alone (what `Fusion.auto()` weighs them by).

Two signals, both measured over the queries fused together:

- corroboration: the share of a branch's top `depth` that a reciprocal-rank fusion of the other branches also
  ranks in its top `depth`. A branch searching a broken index (shuffled ids, another corpus) is corroborated by
  nothing; one whose corroboration falls below `corroborated` times the best branch's loses weight in proportion.
- head-to-head advantage: how high a branch ranks the other branches' top `depth` documents (mean log rank), minus
  how high they rank its own. A stronger retriever recognises what a weaker one found better than the weaker one
  recognises its results. Being antisymmetric, the comparison is not swayed by two branches that resemble each
  other (two lexical retrievers), which inflates agreement-based estimates.

weight = corroboration factor * exp(sharpness * advantage), normalised to sum to 1. The constants (depth 10,
sharpness 10, corroborated 0.5) were set once, on SciFact and TREC DL 2019 with degraded and weak branches
(README, "Zero-shot fusion"); they are not tuned per collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rankstack.data.run import Run, sort_hits


@dataclass
class Reliability:
    """`weights` (summing to 1), and per branch its `corroboration` (mean overlap with the others' fusion) and
    `advantage` (mean head-to-head log-rank advantage; positive: it recognises the others' results better than
    they recognise its own)."""

    weights: np.ndarray
    corroboration: np.ndarray
    advantage: np.ndarray


def estimate_reliability(runs: Sequence[Run], depth: int = 10, sharpness: float = 10.0, corroborated: float = 0.5,
                         reference_depth: int = 100) -> Reliability:
    """Reliability weights of `runs` (see the module docstring). Runs that nothing tells apart get equal weights."""
    from rankstack.pipeline.fusion import aligned

    m = len(runs)
    columns, _ = aligned(runs)
    qids = list(dict.fromkeys(q for run in runs for q in run))
    empty = np.zeros(0, np.int32)
    lists = [[c[q][0] if q in c else empty for c in columns] for q in qids]
    equal = np.full(m, 1 / m)
    if m < 2 or not qids:
        return Reliability(equal, np.zeros(m), np.zeros(m))
    factor = np.ones(m)
    overlap = np.zeros(m)
    for _ in range(2):  # a second pass leaves uncorroborated branches out of the others' references
        overlap = np.mean([_overlaps(row, factor, depth, reference_depth) for row in lists], axis=0)
        best = overlap.max()
        factor = np.clip(overlap / (corroborated * best), 0.0, 1.0) if best > 0 else np.ones(m)
    ranks = np.zeros((m, m))  # ranks[i, j]: mean log rank, in run i, of run j's top `depth`
    counts = np.zeros((m, m))
    for row in lists:
        cap = max(len(x) for x in row)
        for i in range(m):
            for j in range(m):
                if i != j and len(row[i]) and len(row[j]):
                    ranks[i, j] += np.log1p(_positions(row[i], row[j][:depth], cap)).mean()
                    counts[i, j] += 1
    ranks = np.divide(ranks, counts, out=np.zeros_like(ranks), where=counts > 0)
    advantage = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i and counts[i, j] and counts[j, i]]
        votes = np.array([factor[j] for j in others])
        if others and votes.sum() > 0:
            advantage[i] = float(np.dot(votes, [ranks[j, i] - ranks[i, j] for j in others]) / votes.sum())
    weights = factor * np.exp(sharpness * (advantage - advantage.max()))
    weights = weights / weights.sum() if weights.sum() > 0 else equal
    return Reliability(weights, overlap, advantage)


def _positions(ranked: np.ndarray, docs: np.ndarray, cap: int) -> np.ndarray:
    """0-based rank of each of `docs` in `ranked`, `cap` for those it lacks."""
    order = np.argsort(ranked, kind="stable")
    sorted_docs = ranked[order]
    at = np.minimum(np.searchsorted(sorted_docs, docs), len(ranked) - 1)
    found = sorted_docs[at] == docs
    return np.where(found, order[at], cap).astype(np.float64)


def _overlaps(row: list[np.ndarray], factor: np.ndarray, depth: int, reference_depth: int) -> np.ndarray:
    """Each run's top `depth` overlap with the top `depth` of a weighted reciprocal-rank fusion of the others."""
    m = len(row)
    out = np.zeros(m)
    for i in range(m):
        mine = row[i][:depth]
        others = [(row[j][:reference_depth], factor[j]) for j in range(m) if j != i and factor[j] > 0 and len(row[j])]
        if not len(mine) or not others:
            continue
        docnos = np.concatenate([d for d, _ in others])
        contrib = np.concatenate([w / (60 + np.arange(1, len(d) + 1)) for d, w in others])
        unique, inverse = np.unique(docnos, return_inverse=True)
        scores = np.bincount(inverse, weights=contrib, minlength=len(unique))
        reference = sort_hits(unique, scores.astype(np.float32)).docnos[:depth]
        out[i] = len(np.intersect1d(mine, reference)) / depth
    return out
