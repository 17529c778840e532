"""Named test collections (see rankstack.data.datasets)."""

from rankstack.data.datasets import COLLECTIONS, Dataset, cache_dir, data_roots, load, names

__all__ = ["COLLECTIONS", "Dataset", "cache_dir", "data_roots", "load", "names"]
