"""Pausing Python's cyclic garbage collector around bulk work that creates no reference cycles."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_depth = 0  # open pauses, all threads together
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (reference counting still frees everything that is not a cycle).

    Indexing creates millions of short-lived tuples; each allocation counts towards a collection that walks every
    live container: pausing made BM25 builds 1.19x faster in one process, 1.26x with 2 workers (README, "Builds
    against tantivy"). Pauses nest and may overlap across threads: the collector runs again when the last one ends,
    if it ran before the first. A process forked during a pause (a build's worker) stays paused: it lives only for
    the build."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
