"""Posting cursors over block-compressed lists (rankstack.index.postings), one per query term, for the query kernels.

A cursor is a block pointer that may run ahead of its posting ("shallow" moves, for block bounds) and a lazily
decoded block. The state of a query's cursors is one int64 matrix ``C``, a row per cursor and a column per field
(below), plus buffers holding each cursor's decoded docnos (``bufd``), values (``bufv``), contributions (``bufc``)
and the bound of one block (``bub``). ``seg`` is a `rankstack.index.postings.PostingArrays`; the per-posting
moves take only the arrays they read (block_last, block_offsets, the bit widths, data: passing the whole tuple to
every call measured 25% slower Block-Max WAND at k=1000).

All functions but `open_cursors` are compiled without reference counting (``_nrt=False``: numba's atomic
increfs would cost more than a posting's work), so they must not allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.index.postings import BLOCK, FLOOR_K, decode_block_docs, decode_block_values
from rankstack.index.scoring import BM25, block_bound, bound, contrib, doc_norm
from rankstack.index.unsigned import U

END = 2**31 - 1  # docno of an exhausted cursor
# columns of C: current block, term's first block, term's end block, postings in the term's last block, position
# in the decoded block, postings in it, block whose docnos / values are decoded, current docno (END when
# exhausted), block whose bound is cached in `bub`, block whose contributions are in `bufc`.
BLK, FIRST, STOP, LAST, POS, CNT, DEC, VDEC, CD, BUB_BLK, CDEC = range(11)


@njit(cache=True, nogil=True, inline="always")
def lower_bound(ascending, lo, hi, x):
    """First position in ascending[lo:hi] whose value is >= x (hi if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if ascending[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def find(ascending, x):
    """Position of x in an ascending array, or -1."""
    lo = lower_bound(ascending, 0, ascending.shape[0], x)
    return lo if lo < ascending.shape[0] and ascending[lo] == x else -1


@njit(cache=True, nogil=True)
def open_cursors(seg, mode, term_ids, weights, na, nb):
    """Allocate and open the query's cursors: (C, term bounds, float64 weights, bufd, bufv, bufc, bub)."""
    n = term_ids.shape[0]
    C = np.full((n, 11), -1, np.int64)
    ub = np.zeros(n, np.float64)
    w64 = np.empty(n, np.float64)
    _open(seg, mode, term_ids, weights, na, nb, C, ub, w64)
    return (C, ub, w64, np.empty((n, BLOCK), np.int32), np.empty((n, BLOCK), np.uint32),
            np.empty((n, BLOCK), np.float32), np.zeros(n, np.float64))


@njit(cache=True, nogil=True, _nrt=False)
def _open(seg, mode, term_ids, weights, na, nb, C, ub, w64):
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        b0, b1 = np.int64(seg.term_blocks[t]), np.int64(seg.term_blocks[t + 1])
        C[i, BLK] = b0
        C[i, FIRST] = b0
        C[i, STOP] = b1
        C[i, LAST] = seg.term_last_count[t]
        C[i, POS] = 0
        w64[i] = np.float64(weights[i])
        if b1 == b0:
            C[i, CD] = END
            continue
        # the first block starts with its first docno as a plain word: no decoding needed
        C[i, CD] = np.int64(seg.data[np.int64(seg.block_offsets[b0])])
        j = find(seg.ub_terms, t)
        if j < 0:  # one-block term: the block's bound
            ub[i] = block_bound(seg.block_max, seg.block_min_len, mode, w64[i], b0, na, nb)
            continue
        for p in range(seg.ub_offsets[j], seg.ub_offsets[j + 1]):
            ub[i] = max(ub[i], bound(mode, w64[i], np.float64(seg.ub_values[p]), np.float64(seg.ub_lengths[p]),
                                     na, nb))


@njit(cache=True, nogil=True, _nrt=False)
def floor_threshold(seg, mode, term_ids, weights, norm, live, k):
    """A float32 score below the query's k-th best (0 when none is known): the largest, over the query's terms, k-th
    largest contribution of the term's live floor postings (`rankstack.index.postings`), stepped down one float32
    ulp. k live documents score at least that contribution (a float32 sum of non-negative contributions is at least
    each of them), so a document scoring at most the threshold is not in the top k."""
    best = np.float32(0.0)
    if k > FLOOR_K or seg.floor_docs.shape[0] == 0:
        return best
    for i in range(term_ids.shape[0]):
        j = find(seg.ub_terms, term_ids[i])
        if j < 0:
            continue
        first = j * FLOOR_K
        for a in range(first, first + FLOOR_K):  # the largest contribution that k live floor postings reach
            c = _floor_contrib(seg, mode, weights[i], norm, live, a)
            if c > best:
                reached = 0
                for e in range(first, first + FLOOR_K):
                    reached += _floor_contrib(seg, mode, weights[i], norm, live, e) >= c
                if reached >= k:
                    best = c
    return np.float32(np.nextafter(best, np.float32(0.0))) if best > 0 else best


@njit(cache=True, nogil=True, inline="always")
def _floor_contrib(seg, mode, w, norm, live, a):
    """The contribution of floor posting a at query weight w (-1 for a deleted document)."""
    d = seg.floor_docs[a]
    if live.shape[0] > 0 and not live[d]:
        return np.float32(-1.0)
    return contrib(mode, w, seg.floor_values[a], doc_norm(norm, d) if mode == BM25 else np.float32(0.0))


@njit(cache=True, nogil=True, _nrt=False)
def load_docs(block_last, block_offsets, dbits, data, C, bufd, i):
    """Decode the docnos of cursor i's current block unless done; True if it decoded."""
    b = C[i, BLK]
    if C[i, DEC] == b:
        return False
    n = BLOCK if b + 1 < C[i, STOP] else C[i, LAST]
    decode_block_docs(block_offsets, dbits, block_last, data, b, b == C[i, FIRST], n, bufd, i)
    C[i, DEC] = b
    C[i, CNT] = n
    return True


@njit(cache=True, nogil=True, _nrt=False)
def load_values(block_offsets, dbits, vbits, data, C, bufv, i):
    """Decode the values of cursor i's current block into bufv[i]."""
    b = C[i, BLK]
    n = BLOCK if b + 1 < C[i, STOP] else C[i, LAST]
    decode_block_values(block_offsets, dbits, vbits, data, b, b == C[i, FIRST], n, bufv, i)
    C[i, VDEC] = b


@njit(cache=True, nogil=True, inline="always")
def value(block_offsets, dbits, vbits, data, C, bufv, i):
    """Cursor i's current posting value (decoding its block's values if needed)."""
    if C[i, VDEC] != C[i, BLK]:
        load_values(block_offsets, dbits, vbits, data, C, bufv, i)
    return bufv[U(i), U(C[i, POS])]


@njit(cache=True, nogil=True, _nrt=False)
def load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i):
    """Decode cursor i's current block and compute all its contributions into bufc[i]."""
    load_docs(seg.block_last, seg.block_offsets, seg.block_doc_bits, seg.data, C, bufd, i)
    if C[i, VDEC] != C[i, BLK]:
        load_values(seg.block_offsets, seg.block_doc_bits, seg.block_val_bits, seg.data, C, bufv, i)
    w = weights[i]
    if mode == BM25:
        for j in range(C[i, CNT]):
            bufc[i, j] = contrib(BM25, w, bufv[i, j], doc_norm(norm, bufd[i, j]))
    else:
        for j in range(C[i, CNT]):
            bufc[i, j] = contrib(mode, w, bufv[i, j], np.float32(0.0))
    C[i, CDEC] = C[i, BLK]


@njit(cache=True, nogil=True, _nrt=False)
def advance(block_last, block_offsets, dbits, data, C, bufd, i):
    """Advance cursor i to its next posting (it must sit on a posting of its current block)."""
    load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
    p = C[i, POS] + 1
    if p < C[i, CNT]:
        C[i, POS] = p
        C[i, CD] = bufd[i, p]
        return
    b = C[i, BLK] + 1
    C[i, BLK] = b
    C[i, POS] = 0
    if b >= C[i, STOP]:
        C[i, CD] = END
        return
    load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
    C[i, CD] = bufd[i, 0]


@njit(cache=True, nogil=True, inline="always")
def move_to(block_last, block_offsets, dbits, data, C, bufd, i, p):
    """Put cursor i on position p of its decoded block, or, when p is past the block's end, on its next posting."""
    if p < C[i, CNT]:
        C[i, POS] = p
        C[i, CD] = bufd[U(i), U(p)]
    else:
        C[i, POS] = C[i, CNT] - 1
        advance(block_last, block_offsets, dbits, data, C, bufd, i)


@njit(cache=True, nogil=True, _nrt=False)
def shallow(block_last, C, i, target):
    """Move cursor i's block pointer (not its posting) to the first block that may hold target."""
    b, e = C[i, BLK], C[i, STOP]
    if b >= e or block_last[b] >= target:
        return
    # galloping search for the first block whose last docno >= target
    lo, step = b, 1
    while lo + step < e and block_last[lo + step] < target:
        lo += step
        step *= 2
    hi = min(lo + step, e)  # block_last[lo] < target; answer in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if block_last[mid] < target:
            lo = mid
        else:
            hi = mid
    C[i, BLK] = hi


@njit(cache=True, nogil=True, inline="always")
def next_geq(block_last, block_offsets, dbits, data, C, bufd, i, target):
    """Advance cursor i to its first posting >= target (END if none). Inlined: a target at or before the cursor, or
    inside its decoded block, costs no call (a call passes every array field by field)."""
    if C[i, CD] >= target:
        return
    b = C[i, BLK]
    if C[i, DEC] == b and block_last[b] >= target:
        p = C[i, POS]
        while bufd[U(i), U(p)] < target:
            p += 1
        C[i, POS] = p
        C[i, CD] = bufd[U(i), U(p)]
        return
    _next_geq_block(block_last, block_offsets, dbits, data, C, bufd, i, target)


@njit(cache=True, nogil=True, _nrt=False)
def _next_geq_block(block_last, block_offsets, dbits, data, C, bufd, i, target):
    """`next_geq` past the decoded block: find the target's block, decode it, scan it."""
    shallow(block_last, C, i, target)
    if C[i, BLK] >= C[i, STOP]:
        C[i, CD] = END
        return
    p = 0 if load_docs(block_last, block_offsets, dbits, data, C, bufd, i) else C[i, POS]
    while bufd[U(i), U(p)] < target:
        p += 1
    C[i, POS] = p
    C[i, CD] = bufd[U(i), U(p)]


@njit(cache=True, nogil=True, _nrt=False)
def cursor_bound(block_max, block_min_len, mode, C, bub, w64, i, na, nb):
    """Bound of cursor i's current block (cached; 0 when exhausted)."""
    b = C[i, BLK]
    if b >= C[i, STOP]:
        return 0.0
    if C[i, BUB_BLK] != b:
        bub[i] = block_bound(block_max, block_min_len, mode, w64[i], b, na, nb)
        C[i, BUB_BLK] = b
    return bub[i]
