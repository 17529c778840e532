"""Rendering a Comparison as an aligned terminal table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rankstack.evaluate.significance import Comparison

__all__ = ["MARKER", "format_table", "format_json", "format_csv"]

MARKER = "†"
_TEST_NAMES = {"t-test": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
_CORRECTION_NAMES = {"holm": "Holm-Bonferroni corrected", "bonferroni": "Bonferroni corrected",
                     None: "uncorrected"}


def format_table(comparison: Comparison, extra_columns: dict[str, list[str]] | None = None) -> str:
    """One row per run, one column per measure (mean, 4 decimals), MARKER where significantly different
    from the baseline, then a footnote with the test, correction and number of queries.
    `extra_columns` adds columns after the measures: header -> one cell per run."""
    several = len(comparison.evaluations) > 1
    extra_columns = extra_columns or {}
    header = ["run", *(f"{m} " for m in comparison.measures), *extra_columns]  # the space: the marker's column
    rows = []
    for i, (name, results) in enumerate(zip(comparison.names, comparison.results)):
        label = f"{name} (baseline)" if several and i == comparison.baseline else name
        rows.append([label, *(f"{r.mean:.4f}" + (MARKER if r.significant else " ") for r in results.values()),
                     *(cells[i] for cells in extra_columns.values())])
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))]).rstrip()
             for row in [header, *rows]]

    counts = sorted({e.num_queries for e in comparison.evaluations})
    queries = f"{counts[0]} queries" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} queries per run"
    if several:
        footnote = (f"{MARKER} significantly different from the baseline ({_TEST_NAMES[comparison.test]}, "
                    f"{_CORRECTION_NAMES[comparison.correction]}, p < {comparison.alpha:g}); {queries}")
    else:
        footnote = queries
    notes = [f"{e.name}: {note}" if several else note for e in comparison.evaluations for note in e.notes]
    return "\n".join([*lines, footnote, *notes]) + "\n"


def format_json(comparison: Comparison) -> str:
    """Everything: settings, and per run its notes, per-measure results (p-values included) and per-query values."""
    runs = [{
        "name": e.name,
        "baseline": i == comparison.baseline,
        "num_queries": e.num_queries,
        "notes": e.notes,
        "results": {m: {k: _number(v) for k, v in asdict(r).items()} for m, r in results.items()},
        "per_query": e.per_query,
    } for i, (e, results) in enumerate(zip(comparison.evaluations, comparison.results))]
    return json.dumps({
        "measures": comparison.measures,
        "baseline": comparison.names[comparison.baseline],
        "test": comparison.test,
        "correction": comparison.correction,
        "alpha": comparison.alpha,
        "runs": runs,
    }, indent=2, ensure_ascii=False, allow_nan=False)


def format_csv(comparison: Comparison) -> str:
    """One row per run and measure: mean, delta, p, p_corrected, significant (p empty on the baseline row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "measure", "mean", "delta", "p", "p_corrected", "significant", "num_paired"])
    for name, results in zip(comparison.names, comparison.results):
        for m, r in results.items():
            writer.writerow([name, m, *("" if _number(v) is None else v for v in
                                        (r.mean, r.delta, r.p, r.p_corrected, r.significant, r.num_paired))])
    return out.getvalue()


def _number(value: float | int | bool | None) -> float | int | bool | None:
    """NaN as None, so that JSON stays valid."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
