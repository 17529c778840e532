"""Evaluating one run against relevance judgments, per query and on average."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

import ir_measures

from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.evaluate.measures import Measure, parse_measure, parse_measures

if TYPE_CHECKING:
    from rankstack.evaluate.significance import Comparison

__all__ = ["Evaluation", "evaluate"]

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

    def comparison(self) -> "Comparison":
        """This evaluation as a one-run Comparison, for its table, JSON and CSV output."""
        from rankstack.evaluate.significance import Comparison

        return Comparison.of([self])

    def to_table(self) -> str:
        return self.comparison().to_table()

    def to_json(self) -> str:
        return self.comparison().to_json()

    def to_csv(self) -> str:
        return self.comparison().to_csv()

    def __str__(self) -> str:
        return self.to_table()


def evaluate(run: Run, qrels: Mapping[str, Mapping[str, int]],
             measures: Iterable[str | Measure] | str | Measure, complete: bool = False) -> Evaluation:
    """Evaluate `run` with ir_measures (pytrec_eval, i.e. trec_eval's code, for the standard measures).

    Evaluated queries are the queries of `qrels` with at least one judgment. Run queries without
    judgments are ignored (counted in ``notes``). Judged queries the run has no results for are skipped
    with a warning, like trec_eval without ``-c``; with ``complete=True`` they count as 0 (``trec_eval -c``).

    Tied scores: trec_eval and so pytrec_eval order documents with equal scores by descending doc id,
    whatever their order in the run, so a run whose ties are broken otherwise is evaluated in that order.
    """
    measures = parse_measures(measures)
    if run.num_hits() == 0:
        raise InputError(f"run {run.name!r} is empty")
    judged = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items() if docs}
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

    keys = {m: str(m) for m in measures}
    computed: dict[str, dict[str, float]] = {key: {} for key in keys.values()}
    try:
        for metric in ir_measures.iter_calc(measures, {q: judged[q] for q in evaluated}, evaluated):
            computed[keys[metric.measure]][metric.query_id] = float(metric.value)
    except ValueError as e:
        raise InputError(f"cannot compute {', '.join(keys.values())}: {e}") from e
    queries = judged if complete else evaluated
    per_query = {key: {q: values[q] if q in evaluated else 0.0 for q in queries}
                 for key, values in computed.items()}
    return Evaluation(run.name, measures, per_query, notes)
