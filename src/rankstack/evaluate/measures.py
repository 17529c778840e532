"""Measure specifications: ir_measures syntax plus a few friendly spellings.

Accepted besides ir_measures' own syntax (``nDCG@10``, ``R(rel=2)@1000``, ``AP``):

- case-insensitive names and aliases: ``ndcg@10``, ``MRR@10`` -> ``RR@10``, ``MAP`` -> ``AP``,
  ``Recall@100`` -> ``R@100``, ``Precision@10`` -> ``P@10``;
- a relevance-level suffix: ``R@100 rel>=2`` -> ``R(rel=2)@100``, ``MAP rel>=2`` -> ``AP(rel=2)``.
"""

from __future__ import annotations

import re
from typing import Iterable

import ir_measures
from ir_measures.measures import Measure

from rankstack.errors import InputError

__all__ = ["Measure", "parse_measure", "parse_measures"]

EXAMPLES = "nDCG@10, RR@10, AP, P@10, R@100, R(rel=2)@1000, MAP rel>=2"

# Lower-cased name -> ir_measures name; explicit aliases win over case-insensitive registry matches.
_NAMES: dict[str, str] = {name.lower(): name for name in ir_measures.measures.registry} | {
    "ndcg": "nDCG", "mrr": "RR", "map": "AP", "recall": "R", "precision": "P",
}
_REL_SUFFIX = re.compile(r"^(?P<measure>.+?)\s+rel\s*>=\s*(?P<rel>\d+)$")
_NAME = re.compile(r"^(?P<name>[^\W\d]\w*)(?P<rest>.*)$")


def parse_measure(spec: str | Measure) -> Measure:
    """One measure from an ir_measures Measure or a string such as ``nDCG@10`` or ``R@100 rel>=2``."""
    if not isinstance(spec, (str, Measure)):
        raise InputError(f"a measure must be a string or an ir_measures Measure, got {spec!r}")
    try:
        measure = spec if isinstance(spec, Measure) else _parse(spec)
        measure.validate_params()
    except (NameError, ValueError, KeyError, TypeError, SyntaxError, AssertionError) as e:
        shown = spec if isinstance(spec, str) else f"{spec.NAME} with {spec.params}"
        raise InputError(f"unknown or invalid measure {shown!r} ({e}); valid examples: {EXAMPLES}") from None
    return measure


def _parse(spec: str) -> Measure:
    text, rel = spec.strip(), None
    if suffix := _REL_SUFFIX.match(text):
        text, rel = suffix["measure"].strip(), int(suffix["rel"])
    if head := _NAME.match(text):
        text = _NAMES.get(head["name"].lower(), head["name"]) + head["rest"]
    measure = ir_measures.parse_measure(text)
    if rel is not None:
        if measure.params.get("rel", rel) != rel:
            raise ValueError(f"two relevance levels given ({measure.params['rel']} and {rel})")
        measure = measure(rel=rel)
    return measure


def parse_measures(specs: Iterable[str | Measure] | str | Measure) -> list[Measure]:
    """Parse measures (see the module docstring), dropping duplicates and keeping the given order."""
    if isinstance(specs, (str, Measure)):
        specs = [specs]
    measures: list[Measure] = []
    for spec in specs:
        measure = parse_measure(spec)
        if measure not in measures:
            measures.append(measure)
    if not measures:
        raise InputError(f"no measures given; valid examples: {EXAMPLES}")
    return measures
