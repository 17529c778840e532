"""Model records: the record an index stores about the encoder that built it, and the check that a query encoder
matches it; and the marker for values a record or repr cannot carry (InMemory). Pure Python: usable by the index
layer without the neural extra."""

from __future__ import annotations

from typing import Any

from rankstack.errors import IncompatibleIndexError

#: model_info keys that describe where or how fast a model ran, not what it computes.
_NOT_COMPARED = {"model", "path", "revision", "dtype", "device"}


def check_compatible(recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """Raise IncompatibleIndexError naming every difference between an index's recorded `model_info` and the
    encoder's: another model (content hash), pooling, normalisation, dimension, prefixes, lengths...

    The keys the index recorded are compared (a key newer encoders add does not invalidate old indexes), except
    where the model was loaded from (hub id or folder, revision name), its precision and its device.
    """
    diffs = _diff(recorded, current, "")
    if diffs:
        raise IncompatibleIndexError(
            f"the encoder differs from the one the index was built with (model {recorded.get('model')!r}, "
            f"revision {recorded.get('revision')!r}): " + "; ".join(diffs)
            + ". Query the index with the same model and settings, or rebuild it.")


def _diff(recorded: dict, current: dict, prefix: str) -> list[str]:
    out = []
    for key in sorted(recorded):
        if key in _NOT_COMPARED:
            continue
        x, y = recorded[key], current.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}: index {x!r}, encoder {y!r}")
    return out


class InMemory:
    """Stands, in a repr or a stage's config, for a value held only in memory (an in-memory corpus, a projection
    matrix, an IDF table): it names what and how much, with a content hash (so two of them differ where their
    contents do), and a pipeline expression holding one cannot be parsed (rankstack.pipeline.config refuses it,
    saying what to pass instead)."""

    def __init__(self, what: str, size: int | tuple[int, ...], digest: str):
        self.what, self.size, self.digest = what, size, digest

    def __repr__(self) -> str:
        return f"in_memory({self.what!r}, {self.size!r}, {self.digest!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InMemory) and (self.what, self.size, self.digest) == (other.what, other.size,
                                                                                      other.digest)

    def __hash__(self) -> int:
        return hash((self.what, self.size, self.digest))
