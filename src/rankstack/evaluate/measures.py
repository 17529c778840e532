"""Measure specifications: ir_measures syntax plus a few friendly spellings.

Accepted besides ir_measures' own syntax (``nDCG@10``, ``R(rel=2)@1000``, ``AP``):

- case-insensitive names and aliases: ``ndcg@10``, ``MRR@10`` -> ``RR@10``, ``MAP`` -> ``AP``,
  ``Recall@100`` -> ``R@100``, ``Precision@10`` -> ``P@10``;
- a relevance-level suffix: ``R@100 rel>=2`` -> ``R(rel=2)@100``, ``MAP rel>=2`` -> ``AP(rel=2)``;
- trec_eval's names, spelled as trec_eval spells them: ``ndcg_cut.10`` or ``ndcg_cut_10`` -> ``nDCG@10``,
  ``recall_100`` -> ``R@100``, ``P.10`` -> ``P@10``, ``map`` -> ``AP``, ``recip_rank`` -> ``RR``,
  ``map_cut_100`` -> ``AP@100``. A trec_eval name without a cut-off, or with several (``P``, ``ndcg_cut``,
  ``P.5,10``), stands for a measure at each of them, as in ``trec_eval -m``: ``parse_measures`` expands it.
"""

from __future__ import annotations

import re
from typing import Iterable

import ir_measures
from ir_measures.measures import Measure

from rankstack.errors import InputError

__all__ = ["Measure", "parse_measure", "parse_measures"]

EXAMPLES = "nDCG@10, RR@10, AP, P@10, R@100, R(rel=2)@1000, MAP rel>=2, ndcg_cut.10, recall_100"

# Lower-cased name -> ir_measures name; explicit aliases win over case-insensitive registry matches.
_NAMES: dict[str, str] = {name.lower(): name for name in ir_measures.measures.registry} | {
    "ndcg": "nDCG", "mrr": "RR", "map": "AP", "recall": "R", "precision": "P",
}
_REL_SUFFIX = re.compile(r"^(?P<measure>.+?)\s+rel\s*>=\s*(?P<rel>\d+)$")
_NAME = re.compile(r"^(?P<name>[^\W\d]\w*)(?P<rest>.*)$")
_TREC_NAME = re.compile(r"^[A-Za-z][\w.,]*$")


def parse_measure(spec: str | Measure) -> Measure:
    """One measure from an ir_measures Measure or a string such as ``nDCG@10``, ``R@100 rel>=2`` or ``ndcg_cut.10``."""
    measures = _parse_all(spec)
    if len(measures) > 1:
        raise InputError(f"{spec!r} names {len(measures)} measures ({', '.join(map(str, measures))}); name one, "
                         f"such as {measures[0]}")
    return measures[0]


def _parse_all(spec: str | Measure) -> list[Measure]:
    """The measures `spec` names: one, or several for a trec_eval name such as ``P`` or ``ndcg_cut.5,10``."""
    if not isinstance(spec, (str, Measure)):
        raise InputError(f"a measure must be a string or an ir_measures Measure, got {spec!r}")
    try:
        measures = [spec] if isinstance(spec, Measure) else _parse(spec)
        for measure in measures:
            measure.validate_params()
    except _PARSE_ERRORS as e:
        shown = spec if isinstance(spec, str) else f"{spec.NAME} with {spec.params}"
        raise InputError(f"unknown or invalid measure {shown!r} ({e}); valid examples: {EXAMPLES}") from None
    return measures


_PARSE_ERRORS = (NameError, ValueError, KeyError, TypeError, SyntaxError, AssertionError)


def _parse(spec: str) -> list[Measure]:
    """ir_measures syntax with rankstack's spellings first; if that fails, a trec_eval name; then the suffix."""
    text, rel = spec.strip(), None
    if suffix := _REL_SUFFIX.match(text):
        text, rel = suffix["measure"].strip(), int(suffix["rel"])
    try:
        measures = [_parse_ir_measures(text)]
        measures[0].validate_params()
    except _PARSE_ERRORS as e:
        if not (measures := _parse_trec(text)):
            raise e
    if rel is not None:
        for i, measure in enumerate(measures):
            if measure.params.get("rel", rel) != rel:
                raise ValueError(f"two relevance levels given ({measure.params['rel']} and {rel})")
            measures[i] = measure(rel=rel)
    return measures


def _parse_ir_measures(text: str) -> Measure:
    if head := _NAME.match(text):
        text = _NAMES.get(head["name"].lower(), head["name"]) + head["rest"]
    return ir_measures.parse_measure(text)


def _parse_trec(name: str) -> list[Measure]:
    """The measures of a trec_eval measure name (such as ``ndcg_cut.10``), or [] when `name` is not one."""
    if not _TREC_NAME.match(name):
        return []
    try:
        return list(ir_measures.parse_trec_measure(name))
    except (*_PARSE_ERRORS, ImportError):
        return []


def parse_measures(specs: Iterable[str | Measure] | str | Measure) -> list[Measure]:
    """Parse measures (see the module docstring), dropping duplicates and keeping the given order."""
    if isinstance(specs, (str, Measure)):
        specs = [specs]
    measures: list[Measure] = []
    for spec in specs:
        for measure in _parse_all(spec):
            if measure not in measures:
                measures.append(measure)
    if not measures:
        raise InputError(f"no measures given; valid examples: {EXAMPLES}")
    return measures
