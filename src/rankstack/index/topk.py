"""Top-k collection, shared by every search kernel (inverted index, Seismic, PLAID) and by the merges of their
per-segment results.

One order everywhere: descending score, then ascending doc number. Two collectors:

* the buffered collector of the pruning kernels (`new`, `offer`, `results`): candidates beating the threshold
  are appended to a buffer of 2k + 16 (score, docno) pairs; when it fills, the k best move to its front
  (quickselect) and the threshold becomes the worst of them. Cheaper than a heap for large k; sorted once at the
  end. Docs are offered in ascending docno order, so a doc that only ties the threshold would rank below the k
  kept ones: offering requires score > threshold;
* a k-heap whose root is its worst entry (`heap_offer`, then `heap_sort`), for kernels that offer docs in any
  order (Seismic).

`select` is the numpy-facing form: the top k of given (docnos, scores).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.data.run import Hits


@njit(cache=True, nogil=True, inline="always")
def better(s1, d1, s2, d2):
    """(s1, d1) ranks before (s2, d2): a higher score, or the same score and a lower docno."""
    return s1 > s2 or (s1 == s2 and d1 < d2)


@njit(cache=True, nogil=True, _nrt=False)
def keep_best(bs, bd, n, k):
    """Move the k best of the n entries to the front (unordered); quickselect."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1  # median of three as pivot, moved to hi
        if better(bs[mid], bd[mid], bs[lo], bd[lo]):
            bs[mid], bs[lo] = bs[lo], bs[mid]
            bd[mid], bd[lo] = bd[lo], bd[mid]
        if better(bs[hi], bd[hi], bs[lo], bd[lo]):
            bs[hi], bs[lo] = bs[lo], bs[hi]
            bd[hi], bd[lo] = bd[lo], bd[hi]
        if better(bs[mid], bd[mid], bs[hi], bd[hi]):
            bs[mid], bs[hi] = bs[hi], bs[mid]
            bd[mid], bd[hi] = bd[hi], bd[mid]
        ps, pd = bs[hi], bd[hi]
        j = lo
        for i in range(lo, hi):
            if better(bs[i], bd[i], ps, pd):
                bs[i], bs[j] = bs[j], bs[i]
                bd[i], bd[j] = bd[j], bd[i]
                j += 1
        bs[hi], bs[j] = bs[j], bs[hi]
        bd[hi], bd[j] = bd[j], bd[hi]
        if j == k - 1:
            return
        if j < k - 1:
            lo = j + 1
        else:
            hi = j - 1


@njit(cache=True, nogil=True, _nrt=False)
def sift_down(hs, hd, i, size):
    """Restore the heap below position i of a heap whose root is its worst entry."""
    s, d = hs[i], hd[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and better(hs[c], hd[c], hs[c + 1], hd[c + 1]):
            c += 1
        if not better(s, d, hs[c], hd[c]):
            break
        hs[i], hd[i] = hs[c], hd[c]
        i = c
    hs[i], hd[i] = s, d


@njit(cache=True, nogil=True, _nrt=False)
def heap_sort(hs, hd, size):
    """Sort the first `size` entries best first, in place (heapify, then pop the worst to the back)."""
    for i in range(size // 2 - 1, -1, -1):
        sift_down(hs, hd, i, size)
    for end in range(size - 1, 0, -1):
        hs[0], hs[end] = hs[end], hs[0]
        hd[0], hd[end] = hd[end], hd[0]
        sift_down(hs, hd, 0, end)


# -- the buffered collector of the pruning kernels ---------------------------------------------------------------


@njit(cache=True, nogil=True)
def new(k):
    """(scores, docnos, [count], [threshold]) of an empty collector."""
    cap = 2 * k + 16
    return np.zeros(cap, np.float32), np.zeros(cap, np.int32), np.zeros(1, np.int64), np.zeros(1, np.float32)


@njit(cache=True, nogil=True, _nrt=False)
def offer(bs, bd, kn, kth, k, s, d):
    """Add (s, d), s > kth[0], to the collector; updates the threshold kth[0] when it can."""
    n = kn[0]
    bs[n] = s
    bd[n] = d
    n += 1
    if n == bs.shape[0]:
        keep_best(bs, bd, n, k)
        n = k
    if n == k:  # k docs held: the worst of them is a lower bound of the final k-th score
        t = bs[0]
        for i in range(1, k):
            t = min(t, bs[i])
        kth[0] = t
    kn[0] = n


@njit(cache=True, nogil=True, _nrt=False)
def finish(bs, bd, kn, k):
    """Sort the collected top k best first, in place at the front of the buffers; returns how many."""
    m = kn[0]
    if m > k:
        keep_best(bs, bd, m, k)
        m = k
    heap_sort(bs, bd, m)
    return m


@njit(cache=True, nogil=True)
def results(bs, bd, kn, k):
    """The collected top k as (docnos, scores), best first."""
    m = finish(bs, bd, kn, k)
    return bd[:m].copy(), bs[:m].copy()


# -- a k-heap, for docs offered in any order ---------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def heap_offer(hs, hd, size, k, s, d):
    """Offer (s, d) to a k-heap whose root is its worst entry; return the new size."""
    if size < k:
        hs[size], hd[size] = s, d
        size += 1
        if size == k:
            for i in range(k // 2 - 1, -1, -1):
                sift_down(hs, hd, i, k)
        return size
    if better(s, d, hs[0], hd[0]):
        hs[0], hd[0] = s, d
        sift_down(hs, hd, 0, k)
    return size


# -- numpy-facing ------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _select(docnos, scores, k):
    n = docnos.shape[0]
    bs, bd = scores.copy(), docnos.copy()
    m = min(k, n)
    if n > m:
        keep_best(bs, bd, n, m)
    heap_sort(bs, bd, m)
    return bd[:m].copy(), bs[:m].copy()


def select(docnos: np.ndarray, scores: np.ndarray, k: int) -> Hits:
    """The top `k` of (docnos, scores) as Hits, best first, ties by lower docno (docnos distinct)."""
    d, s = _select(np.ascontiguousarray(docnos, dtype=np.int32), np.ascontiguousarray(scores, dtype=np.float32),
                   int(k))
    return Hits(d, s)
