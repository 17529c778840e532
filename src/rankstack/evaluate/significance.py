"""Paired significance tests, corrected for testing several runs against one baseline, and the Comparison of
evaluations they make. Evaluations come from ``evaluation`` (which imports this module, never the reverse)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from scipy import stats

from rankstack.errors import InputError
from rankstack.evaluate.measures import Measure, parse_measure
from rankstack.evaluate.report import format_csv, format_json, format_table

if TYPE_CHECKING:  # for annotations only
    from rankstack.evaluate.evaluation import Evaluation

__all__ = ["Comparison", "MeasureComparison", "paired_pvalue", "adjust_pvalues"]

Test = Literal["t-test", "wilcoxon"]
Correction = Literal["holm", "bonferroni"] | None
TESTS = ("t-test", "wilcoxon")
CORRECTIONS = ("holm", "bonferroni", None)


def paired_pvalue(values: Sequence[float], baseline: Sequence[float], test: Test = "t-test") -> float:
    """Two-sided p-value of a paired test; 1 when all differences are 0, NaN with fewer than 2 pairs."""
    x, y = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if len(x) < 2:
        return math.nan
    if not np.any(x - y):
        return 1.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(x, y) if test == "t-test" else stats.wilcoxon(x, y)
    return float(result.pvalue)


def adjust_pvalues(pvalues: Sequence[float], correction: Correction = "holm") -> list[float]:
    """Family-wise corrected p-values (Holm-Bonferroni step-down, or Bonferroni); NaNs stay NaN and
    do not count towards the family size."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = p.copy()
    valid = ~np.isnan(p)
    m = int(valid.sum())
    if correction is None or m == 0:
        return adjusted.tolist()
    if correction == "bonferroni":
        adjusted[valid] = np.minimum(1.0, p[valid] * m)
    else:
        order = np.argsort(p[valid], kind="stable")
        steps = np.minimum(1.0, np.maximum.accumulate(p[valid][order] * (m - np.arange(m))))
        holm = np.empty(m)
        holm[order] = steps
        adjusted[valid] = holm
    return adjusted.tolist()


@dataclass(frozen=True)
class MeasureComparison:
    """One run on one measure. ``delta`` is the mean per-query difference to the baseline over their
    ``num_paired`` common queries; ``p`` and ``p_corrected`` are None on the baseline row."""

    mean: float
    delta: float
    p: float | None
    p_corrected: float | None
    significant: bool
    num_paired: int


@dataclass(frozen=True)
class Comparison:
    """Evaluations of several runs, each tested against the baseline run per measure."""

    evaluations: list[Evaluation]
    baseline: int
    test: str
    correction: str | None
    alpha: float
    results: list[dict[str, MeasureComparison]]  # parallel to evaluations; str(measure) -> result

    @classmethod
    def of(cls, evaluations: Sequence[Evaluation], baseline: int | str = 0, test: Test = "t-test",
           correction: Correction = "holm", alpha: float = 0.05) -> "Comparison":
        """Compare evaluations of the same measures (see ``rankstack.evaluate.compare``)."""
        evaluations = list(evaluations)
        if not evaluations:
            raise InputError("no runs to compare")
        if test not in TESTS:
            raise InputError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
        if correction not in CORRECTIONS:
            raise InputError(f"unknown correction {correction!r}; choose holm, bonferroni or None")
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be between 0 and 1, got {alpha}")
        measures = [str(m) for m in evaluations[0].measures]
        if any([str(m) for m in e.measures] != measures for e in evaluations):
            raise InputError("the evaluations to compare must have the same measures")
        base = _run_index([e.name for e in evaluations], baseline)

        results: list[dict[str, MeasureComparison]] = [{} for _ in evaluations]
        for m in measures:
            reference = evaluations[base].per_query[m]
            tested = {}  # run index -> (p, delta, pairs)
            for i, evaluation in enumerate(evaluations):
                values = evaluation.per_query[m]
                if i == base:
                    results[i][m] = MeasureComparison(evaluation.aggregate[m], 0.0, None, None, False, len(values))
                    continue
                common = [q for q in reference if q in values]
                x, y = [values[q] for q in common], [reference[q] for q in common]
                delta = float(np.mean(np.subtract(x, y))) if common else math.nan
                tested[i] = (paired_pvalue(x, y, test), delta, len(common))
            adjusted = adjust_pvalues([p for p, _, _ in tested.values()], correction)
            for (i, (p, delta, pairs)), p_corrected in zip(tested.items(), adjusted):
                results[i][m] = MeasureComparison(evaluations[i].aggregate[m], delta, p, p_corrected,
                                                  bool(p_corrected < alpha), pairs)
        return cls(evaluations, base, test, correction, alpha, results)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.evaluations]

    @property
    def measures(self) -> list[str]:
        return [str(m) for m in self.evaluations[0].measures]

    def result(self, run: int | str, measure: str | Measure) -> MeasureComparison:
        """The result of a run (index or name) on a measure (any spelling parse_measures accepts)."""
        return self.results[_run_index(self.names, run)][str(parse_measure(measure))]

    def to_table(self, extra_columns: dict[str, list[str]] | None = None) -> str:
        return format_table(self, extra_columns)

    def to_json(self) -> str:
        return format_json(self)

    def to_csv(self) -> str:
        return format_csv(self)

    def __str__(self) -> str:
        return self.to_table()


def _run_index(names: list[str], run: int | str) -> int:
    if isinstance(run, str):
        matches = [i for i, name in enumerate(names) if name == run]
        if len(matches) != 1:
            raise InputError(f"{'no' if not matches else 'more than one'} run named {run!r}; runs: {', '.join(names)}")
        return matches[0]
    if not -len(names) <= run < len(names):
        raise InputError(f"run index {run} out of range for {len(names)} runs")
    return run % len(names)
