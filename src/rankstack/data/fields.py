"""Checking the string fields of records (document and query ids and texts), from files or built in Python."""

from __future__ import annotations

import re
from typing import Any

from rankstack.data.files import PathLike
from rankstack.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: Any, field: str) -> str:
    """`value` if it is a string that UTF-8 can encode; otherwise an InputError naming `field`, the value and the
    problem (not a string, or a lone surrogate such as "\\ud800", which no file or index can hold)."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string, got {type(value).__name__} {_shown(value)}")
    if not value.isascii() and not _encodes(value):
        found = _SURROGATE.search(value)
        raise InputError(f"{field} {_shown(value)} holds a lone surrogate ({found.group()!r} at {found.start()}), "
                         "which is not text: decode its bytes with errors='replace', or drop it")
    return value


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")  # several times faster than searching for surrogates
    except UnicodeEncodeError:
        return False
    return True


def require_str(obj: dict, key: str, path: PathLike, line: int, *, alternatives: tuple[str, ...] = ()) -> str:
    """Return obj[key] (or the first alternative key present) as a string, numbers converted; else an InputError."""
    for k in (key, *alternatives):
        if k in obj and obj[k] is not None:
            value = obj[k]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, str):
                return value
            raise InputError(f"field {k!r} must be a string, found {type(value).__name__}", path, line)
    names = " or ".join(repr(k) for k in (key, *alternatives))
    raise InputError(f"missing field {names}", path, line)


def _shown(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 4] + "...'"
