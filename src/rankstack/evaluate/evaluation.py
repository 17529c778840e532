"""Evaluating runs against relevance judgments, per query and on average, and comparing runs with significance
tests (the tests themselves live in ``significance``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import ir_measures
import numpy as np

from rankstack.data.qrels import Qrels
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.evaluate.measures import Measure, parse_measure, parse_measures
from rankstack.evaluate.significance import Comparison, Correction, Test

__all__ = ["Evaluation", "evaluate", "compare"]

_SHOWN_IDS = 5


@dataclass(frozen=True)
class Evaluation:
    """Per-query values of each measure for one run; ``aggregate`` is their mean over the evaluated queries."""

    name: str
    measures: list[Measure]
    per_query: dict[str, dict[str, float]] = field(repr=False)  # str(measure) -> qid -> value
    notes: list[str] = field(default_factory=list)

    @property
    def queries(self) -> list[str]:
        """The evaluated query ids."""
        return list(self.per_query[str(self.measures[0])])

    @property
    def num_queries(self) -> int:
        return len(self.per_query[str(self.measures[0])])

    @property
    def aggregate(self) -> dict[str, float]:
        """Mean of each measure over the evaluated queries."""
        return {m: sum(values.values()) / len(values) for m, values in self.per_query.items()}

    def value(self, measure: str | Measure, qid: str | None = None) -> float:
        """The mean of `measure` (any spelling parse_measures accepts), or its value on query `qid`."""
        key = str(parse_measure(measure))
        if key not in self.per_query:
            raise KeyError(f"{key} was not evaluated; measures: {', '.join(self.per_query)}")
        return self.aggregate[key] if qid is None else self.per_query[key][qid]

    def comparison(self) -> Comparison:
        """This evaluation as a one-run Comparison, for its table, JSON and CSV output."""
        return Comparison.of([self])

    def to_table(self) -> str:
        return self.comparison().to_table()

    def to_json(self) -> str:
        return self.comparison().to_json()

    def to_csv(self) -> str:
        return self.comparison().to_csv()

    def __str__(self) -> str:
        return self.to_table()


class TiedScoresWarning(UserWarning):
    """Tied scores change a measure value; the evaluation's notes say the same, so a caller that shows the notes
    (the command line's table and JSON) may ignore this warning."""


def evaluate(run: Run, qrels: Mapping[str, Mapping[str, int]],
             measures: Iterable[str | Measure] | str | Measure, complete: bool = False) -> Evaluation:
    """Evaluate `run` with ir_measures (pytrec_eval, i.e. trec_eval's code, for the standard measures).

    Evaluated queries are the queries of `qrels` with at least one judgment. Run queries without
    judgments are ignored (counted in ``notes``). Judged queries the run has no results for are skipped
    with a warning, like trec_eval without ``-c``; with ``complete=True`` they count as 0 (``trec_eval -c``).
    Grades must be integers (see ``rankstack.data.qrels.grade``).

    Tied scores: trec_eval, and so this evaluation, orders documents with equal scores by descending doc id,
    whatever their order in the run. A warning (one per run, with the number of queries) says where that changes
    a value: on the queries where tied documents of different relevance (or judged and unjudged ones) lie where a
    measure reads them (within its cut-off, or anywhere for measures without one) and evaluating the run's own
    order instead gives a different value. Ties among documents of equal relevance, or beyond every cut-off,
    change nothing and are not reported.
    """
    measures = parse_measures(measures)
    if run.num_hits() == 0:
        raise InputError(f"run {run.name!r} is empty")
    qrels = qrels if isinstance(qrels, Qrels) else Qrels(qrels)
    judged = {q: docs for q, docs in qrels.items() if docs}
    results = {q: docs for q, docs in run.to_dict().items() if docs}
    evaluated = {q: results[q] for q in judged if q in results}
    if not evaluated:
        raise InputError(f"run {run.name!r} has no results for any of the {len(judged)} judged queries")

    notes = []
    unjudged = len(results) - len(evaluated)
    if unjudged:
        notes.append(f"{unjudged} run queries without judgments ignored")
    missing = [q for q in judged if q not in results]
    if missing:
        shown = ", ".join(missing[:_SHOWN_IDS]) + (", ..." if len(missing) > _SHOWN_IDS else "")
        if complete:
            notes.append(f"{len(missing)} judged queries without results counted as 0: {shown}")
        else:
            notes.append(f"{len(missing)} judged queries without results skipped: {shown}")
            warnings.warn(f"run {run.name!r} has no results for {len(missing)} of {len(judged)} judged queries "
                          f"({shown}); they are skipped, as by trec_eval without -c (complete=True counts "
                          "them as 0)", stacklevel=2)

    computed = _calculate(measures, judged, evaluated)
    changed = _changed_by_ties(run, judged, evaluated, measures, computed)
    if changed:
        names = ", ".join(sorted({m for qids in changed.values() for m in qids}, key=list(computed).index))
        notes.append(f"tied scores change {names} on {len(changed)} queries")
        warnings.warn(f"run {run.name!r}: on {len(changed)} of {len(evaluated)} evaluated queries, documents of "
                      f"different relevance have tied scores where {names} read them; evaluation orders ties by "
                      "descending doc id (as trec_eval does), not in the run's order, and the run's order gives "
                      "other values there. Break ties in the scores to evaluate the run's own order.",
                      TiedScoresWarning, stacklevel=2)
    queries = judged if complete else evaluated
    per_query = {key: {q: values[q] if q in evaluated else 0.0 for q in queries}
                 for key, values in computed.items()}
    return Evaluation(run.name, measures, per_query, notes)


def compare(runs: Sequence[Run], qrels: Mapping[str, Mapping[str, int]],
            measures: Iterable[str | Measure] | str | Measure, baseline: int | str = 0,
            test: Test = "t-test", correction: Correction = "holm", alpha: float = 0.05,
            complete: bool = False) -> Comparison:
    """Evaluate `runs` and test each against the baseline (index or run name) on every measure.

    Tests are paired (``scipy.stats.ttest_rel`` or ``wilcoxon``, two-sided) over the queries evaluated for
    both runs; with ``complete=True`` that is every judged query, missing ones counting as 0. P-values are
    corrected across the non-baseline runs, per measure; a run is significant where the corrected p < alpha.
    """
    measures = parse_measures(measures)
    qrels = qrels if isinstance(qrels, Qrels) else Qrels(qrels)
    evaluations = [evaluate(run, qrels, measures, complete=complete) for run in runs]
    return Comparison.of(evaluations, baseline, test, correction, alpha)


def _calculate(measures: list[Measure], qrels: Mapping[str, Mapping[str, int]],
               results: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """str(measure) -> qid -> value, for the queries of `results` (all judged)."""
    keys = {m: str(m) for m in measures}
    computed: dict[str, dict[str, float]] = {key: {} for key in keys.values()}
    try:
        for metric in ir_measures.iter_calc(measures, {q: qrels[q] for q in results}, results):
            computed[keys[metric.measure]][metric.query_id] = float(metric.value)
    except ValueError as e:
        raise InputError(f"cannot compute {', '.join(keys.values())}: {e}") from e
    return computed


def _changed_by_ties(run: Run, qrels: Mapping[str, Mapping[str, int]], evaluated: Mapping[str, Mapping[str, float]],
                     measures: list[Measure], computed: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """qid -> the measures whose value on that query differs between trec_eval's tie order and the run's order.

    Only queries with a group of tied documents that starts within the deepest cut-off (the whole ranking if a
    measure has none) and whose documents differ in grade (unjudged counting apart) are evaluated again, with
    scores that follow the run's order."""
    cutoffs = [m.params.get("cutoff") for m in measures]
    depth = None if any(c is None for c in cutoffs) else max(cutoffs)
    suspects = {}
    for qid in evaluated:
        docnos, scores = run[qid]
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # first position of each score group
        sizes = np.diff(np.r_[starts, len(scores)])
        tied = (sizes > 1) & (starts < (len(scores) if depth is None else depth))
        if not tied.any():
            continue
        grades = qrels[qid]
        for start, size in zip(starts[tied].tolist(), sizes[tied].tolist()):
            ids = run.doc_ids.take(docnos[start:start + size])
            if len({grades.get(d) for d in ids}) > 1:
                suspects[qid] = {d: float(len(docnos) - i) for i, d in enumerate(run.doc_ids.take(docnos))}
                break
    if not suspects:
        return {}
    in_run_order = _calculate(measures, qrels, suspects)
    changed: dict[str, list[str]] = {}
    for key, values in in_run_order.items():
        for qid, value in values.items():
            if abs(value - computed[key][qid]) > 1e-9:
                changed.setdefault(qid, []).append(key)
    return changed
