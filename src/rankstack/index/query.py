"""`SegmentSearcher`: top-k retrieval over one segment's compressed postings."""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Callable, Iterator, Sequence

import numba
import numpy as np

from rankstack.errors import IndexFormatError, InputError
from rankstack.index import bmp, kernels
from rankstack.index import scoring
from rankstack.index.postings import FORMAT_VERSION, MODE_BM25, PostingArrays


BMP = 3  # Block-Max Pruning (rankstack.index.bmp), besides the kernels' algorithms
ALGORITHMS = {**kernels.ALGORITHMS, "bmp": BMP}


class SegmentSearcher:
    """Holds one segment's posting arrays (plain or memory-mapped) and runs the query kernels.

    ``arrays``: the dict from `encode_postings` (or its arrays loaded back); ``doc_lengths`` [N]
    (needed in BM25 mode to compute norms): int32 lengths, or uint8 codes with ``length_table``
    giving each code's length (Lucene's length bytes); ``live`` bool[N] (False: deleted) or None.
    Norms are kept per distinct length (code), never per document: memory does not grow with N.
    """

    def __init__(self, arrays: dict[str, np.ndarray], doc_lengths: np.ndarray | None = None,
                 live: np.ndarray | None = None, length_table: np.ndarray | None = None):
        meta = np.asarray(arrays["meta"])
        if int(meta[0]) != FORMAT_VERSION:
            raise IndexFormatError(f"postings format {int(meta[0])}, expected {FORMAT_VERSION}")
        self.mode = int(meta[1])
        self.n_docs = int(meta[2])
        self._seg = PostingArrays.of(arrays)
        self.num_terms = self._seg.term_blocks.shape[0] - 1
        if doc_lengths is None:
            if self.mode == MODE_BM25:
                raise InputError("a BM25 segment needs doc_lengths")
            doc_lengths = np.zeros(0, np.int32)
        codes = np.asarray(doc_lengths)
        if length_table is None:
            codes = codes.astype(np.int32, copy=False)  # a memory-mapped int32 array stays mapped
        elif codes.dtype != np.uint8 or len(length_table) != 256:
            raise InputError("length codes must be uint8 with a 256-entry length_table")
        if codes.shape[0] not in (self.n_docs, 0) or (self.mode == MODE_BM25 and codes.shape[0] != self.n_docs):
            raise InputError(f"doc_lengths has {codes.shape[0]} entries, segment has {self.n_docs} docs")
        self._codes, self._length_table = codes, length_table
        if live is None:
            self.live = np.zeros(0, np.bool_)
        else:
            self.live = np.ascontiguousarray(live, dtype=np.bool_)
            if self.live.shape[0] != self.n_docs:
                raise InputError(f"live has {self.live.shape[0]} entries, segment has {self.n_docs} docs")
        self._norm_key: tuple | None = None
        self._asked: tuple | None = None  # the last (k1, b, avgdl) asked of _params, and its answer
        self._answer: tuple = ()
        self._norm_table = np.zeros(0, np.float32)
        self._range_bounds: tuple = (None, ())  # (the norm table they were built for, bmp.range_bounds' arrays)
        self._bounds_lock = threading.Lock()

    @functools.cached_property
    def _lengths(self) -> np.ndarray:
        """float64 length of each code: the given table, or 0..max for exact lengths (reads every length once,
        at the first BM25 search, not when the segment opens)."""
        table = self._length_table
        return np.asarray(np.arange(int(self._codes.max(initial=0)) + 1) if table is None else table, np.float64)

    @functools.cached_property
    def _mean_length(self) -> float:
        """The segment's own average length, when no avgdl is given (reads every length code once)."""
        if not len(self._codes):
            return 1.0
        return float(np.bincount(self._codes, minlength=len(self._lengths)) @ self._lengths / len(self._codes))

    # -- parameters ----------------------------------------------------------------------------

    def _avgdl(self, avgdl: float | None) -> float:
        if avgdl is None:
            avgdl = self._mean_length
        return float(avgdl) if avgdl > 0 else 1.0

    def _params(self, k1: float, b: float, avgdl: float | None):
        """(norm, norm_a, norm_b) for the kernels; norm = (per-doc codes, float32 norm per code)."""
        asked = (k1, b, avgdl)
        if asked == self._asked:
            return self._answer
        if self.mode != MODE_BM25:
            return (self._codes[:0], np.zeros(0, np.float32)), 0.0, 0.0
        if not (k1 >= 0 and 0 <= b <= 1):
            raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        avgdl = self._avgdl(avgdl)
        key = (float(k1), float(b), avgdl)
        if key != self._norm_key:
            self._norm_table = scoring.norm_table(self._lengths, k1, b, avgdl)
            self._norm_key = key
        self._asked, self._answer = asked, ((self._codes, self._norm_table), *scoring.norm_coefficients(k1, b, avgdl))
        return self._answer

    # -- search ----------------------------------------------------------------------------------

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10, *, algorithm: str = "maxscore",
               theta: float = 1.0, k1: float = 1.2, b: float = 0.75,
               avgdl: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (docnos int32, scores float32) for one query (distinct term ids, -1 for a term the segment
        lacks), best first (ties: lower docno): the per-query path, one compiled call.

        ``algorithm``: "maxscore", "bmw", "bmp" or "exhaustive"; ``theta`` >= 1 trades recall for speed
        (1 = exact); BM25 norms come from ``k1``, ``b``, ``avgdl`` (default: the segment's mean
        length).
        """
        algo, k, theta = _check(algorithm, k, theta)
        t = np.ascontiguousarray(term_ids, dtype=np.int32)
        w = np.ascontiguousarray(weights, dtype=np.float32)
        if t.ndim != 1 or t.shape != w.shape:
            raise InputError("term_ids and weights must be 1-d arrays of equal length")
        if algo == BMP:
            docs, scores, counts = self.search_csr(np.array([0, len(t)], np.int64), t, w, k, algorithm=algorithm,
                                                   theta=theta, k1=k1, b=b, avgdl=avgdl, threads=1)
            return docs[0, :counts[0]], scores[0, :counts[0]]
        nrm, na, nb = self._params(k1, b, avgdl)
        problem, docs, scores = kernels.search_one(self._seg, self.mode, self.n_docs, algo, t, w, nrm, na, nb,
                                                   self.live, k, theta)
        if problem:
            raise InputError(_PROBLEMS[problem])
        return docs, scores

    def search_batch(self, queries: Sequence[tuple[np.ndarray, np.ndarray]], k: int = 10, *,
                     algorithm: str = "maxscore", theta: float = 1.0, k1: float = 1.2, b: float = 0.75,
                     avgdl: float | None = None, threads: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` for many (term_ids, weights) queries on ``threads`` cores (default: all)."""
        parts = [(np.asarray(t), np.asarray(w)) for t, w in queries]
        if any(t.ndim != 1 or t.shape != w.shape for t, w in parts):
            raise InputError("term_ids and weights must be 1-d arrays of equal length")
        indptr = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([len(t) for t, _ in parts], out=indptr[1:])
        terms = np.concatenate([t for t, _ in parts]).astype(np.int32) if parts else np.zeros(0, np.int32)
        weights = np.concatenate([w for _, w in parts]).astype(np.float32) if parts else np.zeros(0, np.float32)
        docs, scores, counts = self.search_csr(indptr, terms, weights, k, algorithm=algorithm, theta=theta, k1=k1,
                                               b=b, avgdl=avgdl, threads=threads)
        return [(docs[q, :counts[q]].copy(), scores[q, :counts[q]].copy()) for q in range(len(parts))]

    def search_csr(self, indptr: np.ndarray, term_ids: np.ndarray, weights: np.ndarray, k: int = 10, *,
                   algorithm: str = "maxscore", theta: float = 1.0, k1: float = 1.2, b: float = 0.75,
                   avgdl: float | None = None, threads: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch of queries as CSR rows (`indptr` int64, `term_ids` int32 with -1 for a term the segment lacks,
        `weights` float32; distinct terms per row): (docnos [Q, w], scores [Q, w], counts [Q]) with query q's hits
        in row q's first counts[q] cells (w = min(k, docs)). ``threads`` (default: numba's setting for this thread,
        `numba_threads`) share the queries; one query, or threads=1, runs on the calling thread."""
        algo, k, theta = _check(algorithm, k, theta)
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        term_ids = np.ascontiguousarray(term_ids, dtype=np.int32)
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if indptr.ndim != 1 or term_ids.ndim != 1 or weights.ndim != 1 or not len(indptr):
            raise InputError(_PROBLEMS[3])
        nrm, na, nb = self._params(k1, b, avgdl)
        n = len(indptr) - 1
        width = max(1, min(k, self.n_docs))
        docs = np.empty((n, width), np.int32)
        scores = np.empty((n, width), np.float32)
        counts = np.zeros(n, np.int64)
        if algo == BMP:
            bounds = self._bounds(nrm[1] if self.mode == MODE_BM25 else None, nrm)

            def kernel(ip, t, w, d, s, c):
                return bmp.search_csr(self._seg, self.mode, self.n_docs, ip, t, w, nrm, self.live, k, theta, *bounds,
                                      d, s, c)
        else:
            def kernel(ip, t, w, d, s, c):
                return kernels.search_csr(self._seg, self.mode, self.n_docs, algo, ip, t, w, nrm, na, nb, self.live,
                                          k, theta, d, s, c)

        threads = 1 if n <= 1 else numba.get_num_threads() if threads is None else threads
        if threads <= 1:
            problem = kernel(indptr, term_ids, weights, docs, scores, counts)
        else:
            def search_rows(first: int, end: int) -> int:  # queries first..end-1 into the same rows
                start, stop = indptr[first], indptr[end]
                return kernel(indptr[first:end + 1] - start, term_ids[start:stop], weights[start:stop],
                              docs[first:end], scores[first:end], counts[first:end])

            # the whole batch checked first: a chunk alone cannot see a bad end of indptr
            problem = kernels.check_queries(indptr, term_ids, weights, self.num_terms) or _in_threads(
                search_rows, n, threads)
        if problem:
            raise InputError(_PROBLEMS[problem])
        return docs, scores, counts

    def _bounds(self, key: np.ndarray | None, norm: tuple) -> tuple:
        """Block-Max Pruning's range bounds for these norms (`key`: BM25's norm table, None in impact mode), built
        at first use and kept while the norms stay."""
        with self._bounds_lock:
            built_for, bounds = self._range_bounds
            if built_for is not key or not bounds:
                bounds = bmp.range_bounds(self._seg, self.mode, norm, self.n_docs)
                self._range_bounds = (key, bounds)
            return bounds


_PROBLEMS = {1: "term id out of range for this segment", 2: "query weights must be finite and >= 0",
             3: "a CSR batch needs 1-d arrays: indptr from 0 to len(term_ids), never decreasing, and as many weights "
                "as term ids"}


def _check(algorithm: str, k: int, theta: float) -> tuple[int, int, float]:
    if algorithm not in ALGORITHMS:
        raise InputError(f"unknown algorithm {algorithm!r} (expected one of {sorted(ALGORITHMS)})")
    if int(k) < 1:
        raise InputError(f"k must be >= 1 (got {k})")
    if not theta >= 1.0:
        raise InputError(f"theta must be >= 1 (got {theta})")
    return ALGORITHMS[algorithm], int(k), float(theta)


def _in_threads(search_rows: Callable[[int, int], int], n: int, threads: int) -> int:
    """`search_rows(a, b)` over queries [0, n) in chunks shared by ``threads`` threads (the calling one included;
    the kernels release the GIL): the first nonzero answer, else 0. Plain threads, not numba's ``prange``: one
    compiled kernel serves one thread and many (a parallel kernel compiled its whole call tree again, a minute
    on first use), and the chunks are handed out as threads come free, so uneven queries balance."""
    threads = max(1, min(int(threads), n, numba.config.NUMBA_NUM_THREADS))
    size = max(1, min(_CHUNK, n // (4 * threads)))
    starts = iter(range(0, n, size))  # next() on a range iterator is atomic under the GIL
    answers: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for a in starts:
                answer = search_rows(a, min(a + size, n))
                if answer:
                    answers.append(answer)
                    return
        except BaseException as error:  # raised on the calling thread below: never a silently missing chunk
            errors.append(error)

    helpers = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
    for thread in helpers:
        thread.start()
    work()
    for thread in helpers:
        thread.join()
    if errors:
        raise errors[0]
    return answers[0] if answers else 0


_CHUNK = 64  # queries per hand-out: large enough that a kernel call's overhead is noise, small enough to balance


@contextlib.contextmanager
def numba_threads(threads: int | None) -> Iterator[None]:
    """numba's thread count set to `threads` (None: unchanged) for the block, then restored."""
    old = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)
