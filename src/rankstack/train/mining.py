"""Hard negatives mined with any rankstack stage, false negatives filtered out, teacher scores attached.

    fused = (bm25 | dense).rrf()
    mined = mine_negatives(fused, train.queries, train.qrels, depth=100, start=0, end=50, count=8,
                           filter=FalseNegativeFilter(fused))   # drop candidates fused ranks above the positive
    examples = attach_teacher_scores(mined.examples, cross_encoder, train.queries)   # for margin-MSE / KL

A stage's scores of given candidates (`stage_scores`): a first stage or a fusion runs on the queries and its
scores are looked up (a document it did not retrieve has no score); a second stage (a reranker) rescores exactly
the candidates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.train.examples import Example

SAMPLING = ("top", "random")


@dataclass
class FalseNegativeFilter:
    """Drop a candidate when `teacher` scores it above the query's lowest-scored positive minus `margin`.

    With margin 0 and a first stage or fusion as the teacher this drops the candidates it ranks above the
    positive; a larger margin drops also those scored just below it. A query whose positives the teacher does not
    score keeps its candidates, and so does a candidate the teacher does not score (a first stage that did not
    retrieve it)."""

    teacher: Stage
    margin: float = 0.0

    def describe(self) -> str:
        return f"dropped when {self.teacher!r} scores them above the positive minus {self.margin}"


@dataclass
class Mined:
    """Mining's outcome: the examples, and counts for the model card."""

    examples: list[Example]
    settings: dict[str, Any]
    filtered: int = 0            # candidates dropped as likely false negatives
    skipped_queries: list[str] = field(default_factory=list)  # no positive, or no negative left

    def describe(self) -> dict[str, Any]:
        counts = [len(e.negatives) for e in self.examples]
        return {**self.settings, "examples": len(self.examples), "queries": len({e.qid for e in self.examples}),
                "negatives_per_example": round(float(np.mean(counts)), 2) if counts else 0.0,
                "filtered_as_false_negatives": self.filtered, "skipped_queries": len(self.skipped_queries)}


def positives(qrels: Qrels | Mapping[str, Mapping[str, int]], qid: str, min_relevance: int = 1) -> list[str]:
    """The documents judged at least `min_relevance` for a query, in the qrels' order."""
    return [d for d, r in qrels.get(qid, {}).items() if r >= min_relevance]


def mine_negatives(stage: Stage, queries: Queries, qrels: Qrels | Mapping[str, Mapping[str, int]], *,
                   depth: int = 100, start: int = 0, end: int | None = None, count: int = 8, sampling: str = "top",
                   seed: int = 0, filter: FalseNegativeFilter | None = None, min_relevance: int = 1) -> Mined:
    """One example per judged-relevant (query, document) pair, with up to `count` negatives from the ranks
    [start, end) of `stage`'s top `depth` (`end` defaults to `depth`), best-ranked first.

    Documents judged relevant (>= `min_relevance`) for the query are never negatives; documents judged
    non-relevant may be. `sampling` "top" takes the best-ranked candidates, "random" draws them uniformly
    (seeded per query). `filter` drops likely false negatives first. Queries without a judged-relevant document
    are skipped."""
    end = depth if end is None else end
    if depth < 1 or count < 1 or not 0 <= start < end <= depth:
        raise InputError(f"need depth >= 1, count >= 1 and 0 <= start < end <= depth; got depth={depth}, "
                         f"count={count}, start={start}, end={end}")
    if sampling not in SAMPLING:
        raise InputError(f"unknown sampling {sampling!r} (expected one of {', '.join(SAMPLING)})")
    judged = Queries(((q, queries[q]) for q in queries if positives(qrels, q, min_relevance)), name=queries.name)
    skipped = [q for q in queries if q not in judged]
    if not judged:
        raise InputError("no query has a judged-relevant document: nothing to train on (check that the qrels "
                         "belong to these queries)")
    run = (stage % depth)(judged)
    candidates = {}
    for qid in judged:
        relevant = set(positives(qrels, qid, min_relevance))
        ranked = run.ids(qid)[start:end] if qid in run else []
        candidates[qid] = [d for d in ranked if d not in relevant]
    filtered = 0
    if filter is not None:
        scores = stage_scores(filter.teacher, judged, {q: candidates[q] + positives(qrels, q, min_relevance)
                                                       for q in judged})
        for qid in judged:
            before = len(candidates[qid])
            candidates[qid] = drop_false_negatives(candidates[qid], positives(qrels, qid, min_relevance),
                                                   scores.get(qid, {}), filter.margin)
            filtered += before - len(candidates[qid])
    examples = []
    for qid in judged:
        chosen = _sample(candidates[qid], count, sampling, seed, qid)
        if not chosen:
            skipped.append(qid)
            continue
        examples += [Example(qid, judged[qid], p, list(chosen)) for p in positives(qrels, qid, min_relevance)]
    settings = {"stage": repr(stage), "depth": depth, "ranks": [start, end], "count": count, "sampling": sampling,
                "seed": seed, "filter": None if filter is None else filter.describe()}
    return Mined(examples, settings, filtered, skipped)


def drop_false_negatives(candidates: Sequence[str], relevant: Sequence[str], scores: Mapping[str, float],
                         margin: float) -> list[str]:
    """The candidates a teacher does not score above its lowest-scored positive minus `margin` (see
    FalseNegativeFilter)."""
    known = [scores[d] for d in relevant if d in scores]
    if not known:
        return list(candidates)
    threshold = min(known) - margin
    return [d for d in candidates if not (d in scores and scores[d] > threshold)]


def _sample(candidates: list[str], count: int, sampling: str, seed: int, qid: str) -> list[str]:
    if sampling == "top" or len(candidates) <= count:
        return candidates[:count]
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(qid.encode()).digest()[:8], "little")])
    return [candidates[i] for i in np.sort(rng.choice(len(candidates), count, replace=False))]


def stage_scores(stage: Stage, queries: Queries, candidates: Mapping[str, Sequence[str]]
                 ) -> dict[str, dict[str, float]]:
    """{qid: {doc id: score}} of each query's candidates by `stage` (see the module docstring)."""
    queries = queries.subset(q for q in candidates if candidates[q])
    if not queries:
        return {}
    if stage.first_stage:
        run = stage(queries)
    else:
        given = Run.from_dict({q: {d: float(-i) for i, d in enumerate(dict.fromkeys(candidates[q]))}
                               for q in queries}, name="candidates")
        run = stage(queries, given)
    out = {}
    for qid in queries:
        wanted = set(candidates[qid])
        out[qid] = {d: s for d, s in run.hits(qid) if d in wanted} if qid in run else {}
    return out


def attach_teacher_scores(examples: Sequence[Example], teacher: Stage, queries: Queries) -> list[Example]:
    """The examples with `teacher`'s scores of their positive and negatives. A document the teacher does not
    score (a first stage that did not retrieve it) gets the lowest score the teacher gave that query's
    documents."""
    wanted: dict[str, list[str]] = {}
    for e in examples:
        wanted.setdefault(e.qid, []).extend([e.positive, *e.negatives])
    scores = stage_scores(teacher, queries.subset(wanted), wanted)
    out = []
    for e in examples:
        known = scores.get(e.qid, {})
        if not known:
            raise InputError(f"teacher {teacher!r} gave no score to any document of query {e.qid!r}")
        floor = min(known.values())
        out.append(Example(e.qid, e.query, e.positive, list(e.negatives),
                           {d: float(known.get(d, floor)) for d in [e.positive, *e.negatives]}))
    return out
