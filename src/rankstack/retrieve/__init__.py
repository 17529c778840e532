"""First stages: an encoder or analyzer plus an index."""

from rankstack.retrieve.bm25 import BM25

__all__ = ["BM25"]
