"""First stages: an encoder or analyzer plus an index.

Neural stages are imported on first use, so `from rankstack.retrieve import BM25` needs no torch or FAISS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"BM25": "bm25", "RM3": "rm3", "Dense": "dense", "DenseRocchio": "dense_prf",
            "LearnedSparse": "sparse", "LateInteraction": "late"}

if TYPE_CHECKING:
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.dense_prf import DenseRocchio
    from rankstack.retrieve.late import LateInteraction
    from rankstack.retrieve.rm3 import RM3
    from rankstack.retrieve.sparse import LearnedSparse


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rankstack.retrieve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rankstack.retrieve.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
