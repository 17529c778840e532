"""First stages: an encoder or analyzer plus an index.

Neural stages are imported on first use, so `from rankstack.retrieve import BM25` needs no torch or FAISS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack._lazy import lazy_exports

_EXPORTS = {"BM25": "bm25", "RM3": "rm3", "Dense": "dense", "DenseRocchio": "dense_prf",
            "LearnedSparse": "sparse", "LateInteraction": "late"}

if TYPE_CHECKING:
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.dense_prf import DenseRocchio
    from rankstack.retrieve.late import LateInteraction
    from rankstack.retrieve.rm3 import RM3
    from rankstack.retrieve.sparse import LearnedSparse


__getattr__ = lazy_exports("rankstack.retrieve", _EXPORTS)

__all__ = sorted(_EXPORTS)
