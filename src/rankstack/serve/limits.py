"""Request limits (query length, k, batch size, candidates, body size, request time) and the request deadline.

The deadline lives in a context variable set in the worker thread that serves the request, so that the code it
calls (pipeline steps, model batches) can stop once the request has run out of time.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from rankstack.errors import InputError
from rankstack.serve.errors import LimitExceeded, RequestTimeout


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; each excess is a 4xx naming the limit."""

    query_chars: int = 1000        # characters of one query
    k: int = 1000                  # hits per query
    batch: int = 256               # queries of a batch search, documents of a write
    candidates: int = 1000         # candidates of a rerank request, hits of each fused run
    body_bytes: int = 4_000_000    # bytes of a request body
    request_seconds: float = 30.0  # time to answer a read request

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "Limits":
        values = dict(values or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"unknown limits {unknown}; known: {sorted(known)}")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InputError(f"limit {name} must be a positive number, got {value!r}")
            if name != "request_seconds" and not float(value).is_integer():
                raise InputError(f"limit {name} must be a whole number, got {value!r}")
            values[name] = float(value) if name == "request_seconds" else int(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, name: str, value: int, what: str) -> None:
        """LimitExceeded if `value` is above the limit `name`."""
        limit = getattr(self, name)
        if value > limit:
            raise LimitExceeded(f"{what} is {value:,}; the limit ({name}) is {limit:,}", name)

    def check_query(self, query: str) -> None:
        self.check("query_chars", len(query), "the query length in characters")


_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("rankstack_deadline",
                                                                                       default=None)


def set_deadline(seconds: float, start: float | None = None) -> None:
    """The current request must be answered within `seconds` from `start` (a time.monotonic(); default now)."""
    _deadline.set(((time.monotonic() if start is None else start) + seconds, seconds))


def clear_deadline() -> None:
    """No time limit for the rest of the current request (a write that has started)."""
    _deadline.set(None)


def deadline() -> float | None:
    """The monotonic time by which the current request must be done (None: no limit)."""
    value = _deadline.get()
    return None if value is None else value[0]


def remaining() -> float | None:
    value = _deadline.get()
    return None if value is None else value[0] - time.monotonic()


def check_deadline() -> None:
    """RequestTimeout if the current request has run out of time."""
    value = _deadline.get()
    if value is not None and time.monotonic() > value[0]:
        raise RequestTimeout(value[1])


def timeout_error() -> RequestTimeout:
    value = _deadline.get()
    return RequestTimeout(value[1] if value else 0.0)
