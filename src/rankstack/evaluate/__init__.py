"""Evaluation of runs with ir_measures, and paired significance tests between runs."""

from rankstack.evaluate.evaluation import Evaluation, evaluate
from rankstack.evaluate.measures import parse_measures
from rankstack.evaluate.significance import Comparison, compare

__all__ = ["evaluate", "compare", "parse_measures", "Evaluation", "Comparison"]
