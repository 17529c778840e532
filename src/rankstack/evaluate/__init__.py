"""Evaluation of runs with ir_measures, and paired significance tests between runs.

Modules depend one way: ``evaluation`` (evaluate, compare) -> ``significance`` (tests, Comparison) -> ``report``
(tables, JSON, CSV); ``evaluation`` and ``significance`` parse measures with ``measures``.
"""

from rankstack.evaluate.evaluation import Evaluation, TiedScoresWarning, compare, evaluate
from rankstack.evaluate.measures import parse_measures
from rankstack.evaluate.significance import Comparison

__all__ = ["evaluate", "compare", "parse_measures", "Evaluation", "Comparison", "TiedScoresWarning"]
