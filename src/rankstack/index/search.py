"""The one search shape of every index backend, as FAISS has one `search` for every index:

    hits = index.search(queries, k, params)     # a batch of queries in, one Hits(docnos, scores) per query out

- queries: `SparseQueries` for the inverted, Seismic and matmul backends (CSR rows over a vocabulary of term
  strings), a float32 matrix for dense indexes, one [tokens, dim] matrix per query for PLAID;
- k: a positive int; hits are global doc numbers (int32) and scores (float32), best first, ties by doc number;
- params: the backend's knobs in one object (`InvertedParams`, `SeismicParams`, `DenseParams`, `PlaidParams`);
  None takes the defaults.
"""

from __future__ import annotations

import functools
import hashlib
from collections import abc
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from rankstack.data.run import Hits
from rankstack.errors import InputError

MAX_WEIGHT = 1e6  # larger query weights would overflow float32 scores
MAX_K = 1_000_000


def check_k(k: Any) -> int:
    """`k` as an int between 1 and MAX_K; InputError otherwise (2.5, "10", True, 0)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise InputError(f"k must be an integer between 1 and {MAX_K:,}, got {k!r}")
    return int(k)


class Vocabulary(Sequence[str]):
    """The term strings naming a sparse query batch's columns. A vocabulary that is reused across batches (an
    encoder's 30,522 tokens) is `shared`: backends cache its lookups (e.g. mapped to a segment's term ids) under its
    `key`, a digest of the terms; a batch's own vocabulary (`from_bags`) is not, and costs no digest."""

    def __init__(self, terms: Iterable[str], shared: bool = True):
        self.terms = tuple(terms)
        self.shared = shared
        self._key: str | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            digest = hashlib.blake2b(digest_size=16)
            for t in self.terms:
                digest.update(t.encode("utf-8", "surrogatepass") + b"\0")
            self._key = digest.hexdigest()
        return self._key

    def __getitem__(self, i):
        return self.terms[i]

    def __len__(self) -> int:
        return len(self.terms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (other.terms is self.terms or other.key == self.key)

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class SparseQueries:
    """A batch of sparse queries: row i's terms are vocabulary[indices[indptr[i]:indptr[i+1]]] with weights
    data[...] (finite, 0 < w <= MAX_WEIGHT; zero weights are dropped; columns ascending, distinct)."""

    indptr: np.ndarray      # int64 [n + 1]
    indices: np.ndarray     # int32 column ids
    data: np.ndarray        # float32 weights
    vocabulary: Vocabulary

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.data[a:b]

    @classmethod
    def from_matrix(cls, matrix: sp.spmatrix, vocabulary: Vocabulary | Sequence[str]) -> "SparseQueries":
        """Rows of a sparse matrix [queries, len(vocabulary)] (e.g. an encoder's output)."""
        vocabulary = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
        if not sp.issparse(matrix):
            raise InputError(f"queries must be a scipy sparse matrix, got {type(matrix).__name__}")
        if matrix.shape[1] != len(vocabulary):
            raise InputError(f"queries have {matrix.shape[1]} columns, the vocabulary {len(vocabulary)} terms")
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        m.sort_indices()
        return cls._checked(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, vocabulary,
                            lambda j: repr(vocabulary[int(m.indices[j])]))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[Any, Any]], vocabulary: Vocabulary | Sequence[str]) -> "SparseQueries":
        """(column ids, weights) per query."""
        vocabulary = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
        rows, cols, vals = [], [], []
        for i, (c, w) in enumerate(pairs):
            c, w = np.asarray(c).ravel(), np.asarray(w, dtype=np.float64).ravel()
            if c.shape != w.shape:
                raise InputError("each query needs as many weights as column ids")
            if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= len(vocabulary)):
                raise InputError(f"query column ids must be integers in 0..{len(vocabulary) - 1}")
            if len(np.unique(c)) != len(c):
                raise InputError("a query lists the same column twice")
            rows.append(np.full(len(c), i))
            cols.append(c)
            vals.append(w)
        n = len(rows)
        cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
        return cls.from_matrix(sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                                             shape=(n, len(vocabulary))), vocabulary)

    @classmethod
    def from_bags(cls, bags: Sequence[Mapping[str, float]]) -> "SparseQueries":
        """Queries as term -> weight mappings (e.g. analysed BM25 queries, term -> count); the batch's distinct
        terms become its vocabulary (not shared), each row's columns in the order of its terms."""
        columns: dict[str, int] = {}
        indptr, indices, data = [0], [], []
        for bag in bags:
            for term, w in bag_items(bag):
                indices.append(columns.setdefault(term, len(columns)))
                data.append(w)
            indptr.append(len(indices))
        return cls(np.array(indptr, np.int64), np.array(indices, np.int32), np.array(data, np.float32),
                   Vocabulary(columns, shared=False))

    @classmethod
    def over_columns(cls, queries: sp.spmatrix | Sequence[tuple[Any, Any]], dim: int) -> "SparseQueries":
        """Queries addressed by column number alone (a matrix [queries, dim] or (column ids, weights) pairs), for
        backends whose columns are their own components (Seismic, matmul): the vocabulary is "0" .. str(dim-1)."""
        vocabulary = _numbered(dim)
        if sp.issparse(queries):
            return cls.from_matrix(queries, vocabulary)
        return cls.from_pairs(queries, vocabulary)

    @classmethod
    def of(cls, queries: "SparseQueries | Sequence[Mapping[str, float]]") -> "SparseQueries":
        """`queries` as SparseQueries (term -> weight mappings are converted with `from_bags`)."""
        return queries if isinstance(queries, SparseQueries) else cls.from_bags(queries)

    @classmethod
    def _checked(cls, indptr, indices, data, vocabulary, name) -> "SparseQueries":
        bad = np.flatnonzero(~((data >= 0) & (data <= MAX_WEIGHT)))
        if len(bad):
            _check_weight(name(bad[0]), float(data[bad[0]]))
        keep = data > 0
        if not keep.all():
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
            indptr = np.zeros(len(indptr), np.int64)
            np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=indptr[1:])
            indices, data = indices[keep], data[keep]
        return cls(indptr, indices, data.astype(np.float32), vocabulary)


@functools.lru_cache(maxsize=8)
def _numbered(dim: int) -> Vocabulary:
    return Vocabulary(str(i) for i in range(dim))


def bag_items(bag: Mapping[str, float]) -> list[tuple[str, float]]:
    """The (term, weight) pairs of a term -> weight mapping whose weight is > 0, in its order; InputError for a query
    that is not a mapping, a term that is not a string, a weight that is not a number in [0, MAX_WEIGHT]."""
    if not isinstance(bag, dict) and not isinstance(bag, abc.Mapping):
        raise InputError(f"a query is a mapping of term -> weight, got {type(bag).__name__}")
    items = []
    for term, w in bag.items():
        if not isinstance(term, str):
            raise InputError(f"query terms must be strings, got {term!r}")
        if not (isinstance(w, (int, float)) and 0 <= w <= MAX_WEIGHT) or isinstance(w, bool):
            _check_weight(repr(term), w)
        if w > 0:
            items.append((term, w))
    return items


def _check_weight(term: str, w: Any) -> None:
    """InputError unless `w` is a number in [0, MAX_WEIGHT] (`term`: the term as shown in the message)."""
    if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not 0 <= w <= MAX_WEIGHT:
        raise InputError(f"query weight of {term} must be a number between 0 and {MAX_WEIGHT:g}, got {w!r}")


@dataclass(frozen=True)
class CollectionStats:
    """BM25's collection statistics, given instead of the index's own: a shard searched with the statistics of
    the whole collection scores exactly as one index would (`df`: document frequency of each query term)."""

    num_docs: int
    sum_lengths: int
    df: Mapping[str, int]


@dataclass(frozen=True)
class InvertedParams:
    """Knobs of the inverted index: `algorithm` "maxscore", "bmw", "bmp" (Block-Max Pruning) or "exhaustive" (all
    exact at theta=1; larger theta trades recall for speed); BM25's `k1`/`b` (default: the index's); `threads`
    (default: all cores); `stats`: collection statistics to score with (sharded search)."""

    algorithm: str = "maxscore"
    theta: float = 1.0
    k1: float | None = None
    b: float | None = None
    threads: int | None = None
    stats: CollectionStats | None = None


@dataclass(frozen=True)
class SeismicParams:
    """Knobs of the Seismic index (pyseismic-lsr's): the `query_cut` heaviest query terms are visited, blocks whose
    summary scores below `heap_factor` x the k-th score are skipped; `threads` (default: all cores)."""

    query_cut: int | None = 20
    heap_factor: float = 0.8
    threads: int | None = None


@dataclass(frozen=True)
class DenseParams:
    """Knobs of a dense (FAISS) index: `nprobe` (IVF), `ef_search` (HNSW), exact `rescore` of the top
    `rescore_depth` (default 4k) approximate hits from the stored vectors."""

    nprobe: int | None = None
    ef_search: int | None = None
    rescore: bool = False
    rescore_depth: int | None = None


@dataclass(frozen=True)
class PlaidParams:
    """Knobs of a PLAID index: `nprobe` centroids per query token; `ncandidates` documents kept by centroid
    interaction (default max(4k, 256)); `rescore` with the stored full-precision vectors; `centroid_threshold`:
    the first centroid interaction skips document tokens whose centroid scores below it for every query token
    (PLAID's centroid pruning; None: none skipped); `ndecompress`: documents kept by a second, full centroid
    interaction among the `ncandidates`, the only ones decompressed and scored exactly (None: all `ncandidates`;
    colbert-ai keeps a quarter)."""

    nprobe: int = 4
    ncandidates: int | None = None
    rescore: bool = False
    centroid_threshold: float | None = None
    ndecompress: int | None = None


EMPTY = Hits(np.zeros(0, np.int32), np.zeros(0, np.float32))
