"""Numba top-k query kernels over block-compressed postings (see `rankstack.index.postings`).

Every public kernel takes the segment's twelve arrays first (``SEGMENT_ARRAYS`` order), then

* ``mode`` 0 BM25 / 1 impact, ``n_docs`` (docs in the segment),
* ``term_ids`` int32[n] (distinct) and ``weights`` float32[n] (>= 0),
* ``norm`` float32[n_docs] (BM25; empty in impact mode) with ``norm_a``, ``norm_b`` such that
  ``norm[d] == float32(norm_a + norm_b * len[d])`` up to rounding (``norm_a = k1*(1-b)``,
  ``norm_b = k1*b/avgdl``): upper bounds evaluate the norm of a block's shortest doc this way,
* ``live`` bool[n_docs] (False: deleted) or an empty array for "all live", ``k`` >= 1,
* ``theta`` (pruning kernels): >= 1, multiplies the top-k threshold when deciding to skip;
  1 is safe (exact), larger is faster and may miss documents (returned scores stay exact).

A doc's score is the float32 sum, in query-term order from 0.0f, of ``w*tf/(tf+norm[d])``
(BM25) or ``w*value`` (impact). Results: (docnos int32, scores float32) of the top ``k`` live
docs with score > 0, by descending score then ascending docno; all kernels agree bit for bit.
Upper bounds are computed in float64 and padded by a relative slack that covers float32
rounding, so the safe pruning never drops a document the exhaustive kernel would return.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from rankstack.index.postings import BLOCK, decode_block_docs, decode_block_values

SEGMENT_ARRAYS = (
    "term_blocks", "term_last_count", "term_ub_offsets", "ub_values", "ub_lengths", "block_last",
    "block_offsets", "block_doc_bits", "block_val_bits", "block_max", "block_min_len", "data",
)
ALGORITHMS = {"exhaustive": 0, "maxscore": 1, "bmw": 2}
END = 2**31 - 1  # docno of an exhausted cursor
_UB_SLACK = 1e-6  # relative padding of per-term/per-block upper bounds (float32 rounding)

# ---------------------------------------------------------------------------------------------
# scoring and top-k heap


@njit(cache=True, nogil=True, inline="always")
def _contrib(mode, w, v, nd):
    """float32 contribution of value ``v`` at a doc whose norm is ``nd``."""
    fv = np.float32(v)
    if mode == 0:
        return w * fv / (fv + nd)
    return w * fv


@njit(cache=True, nogil=True, inline="always")
def _bound(mode, w, v, ln, na, nb):
    """float64 upper bound of a contribution with value <= v at docs no shorter than ln."""
    if mode == 0:
        if v >= 65535.0:  # saturated tf: any tf, and tf / (tf + norm) < 1
            return w * (1.0 + _UB_SLACK)
        nl = (na + nb * ln) * (1.0 - _UB_SLACK)
        if nl < 0.0:
            nl = 0.0
        return w * v / (v + nl) * (1.0 + _UB_SLACK)
    return w * v * (1.0 + _UB_SLACK)


@njit(cache=True, nogil=True, inline="always")
def _worse(s1, d1, s2, d2):
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(cache=True, nogil=True, _nrt=False)
def _sift_down(hs, hd, i, size):
    s, d = hs[i], hd[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _worse(hs[c + 1], hd[c + 1], hs[c], hd[c]):
            c += 1
        if not _worse(hs[c], hd[c], s, d):
            break
        hs[i], hd[i] = hs[c], hd[c]
        i = c
    hs[i], hd[i] = s, d


@njit(cache=True, nogil=True, _nrt=False)
def _heap_push(hs, hd, s, d):
    """Replace the worst entry (root) by (s, d); caller checked that s beats it."""
    hs[0] = s
    hd[0] = d
    _sift_down(hs, hd, 0, hs.shape[0])


@njit(cache=True, nogil=True)
def _heap_results(hs, hd):
    """Heap-sort best first and return the entries with score > 0 (not the 0.0 sentinels)."""
    for end in range(hs.shape[0] - 1, 0, -1):
        hs[0], hs[end] = hs[end], hs[0]
        hd[0], hd[end] = hd[end], hd[0]
        _sift_down(hs, hd, 0, end)
    m = 0
    while m < hs.shape[0] and hs[m] > 0:
        m += 1
    return hd[:m].copy(), hs[:m].copy()


@njit(cache=True, nogil=True)
def _new_heap(k):
    return np.zeros(k, np.float32), np.full(k, -1, np.int32)


# ---------------------------------------------------------------------------------------------
# cursors, one per query term: a block pointer that may run ahead of the posting ("shallow"
# moves for block bounds) and a lazily decoded block. The state is one int64 matrix, a column
# per field:
BLK, FIRST, STOP, LAST, POS, CNT, DEC, VDEC, CD, BUB_BLK = range(10)
# current block, term's first block, term's end block, postings in the term's last block,
# position in the decoded block, postings in it, block whose docnos / values are decoded,
# current docno (END when exhausted), block whose bound is cached in `bub`.
#
# Numba increfs every array argument of a call, and of a numba-inlined function, with atomic
# operations that cost far more than a posting's work: the algorithms spell out the frequent
# paths (next posting in the block, value, block bound) and call the helpers below, compiled
# without refcounting (_nrt=False), only on block changes and skips. Tuples of arrays are
# unpacked once per query for the same reason.


@njit(cache=True, nogil=True)
def _cursors(term_blocks, term_last, ub_off, ub_val, ub_len, block_offsets, bmax, bminlen, data,
             mode, term_ids, weights, na, nb):
    """(state matrix C, term upper bounds, float64 weights) for the query's terms."""
    n = term_ids.shape[0]
    C = np.full((n, 10), -1, np.int64)
    ub = np.zeros(n, np.float64)
    w64 = np.empty(n, np.float64)
    for i in range(n):
        t = term_ids[i]
        b0, b1 = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        C[i, BLK] = b0
        C[i, FIRST] = b0
        C[i, STOP] = b1
        C[i, LAST] = term_last[t]
        C[i, POS] = 0
        w64[i] = np.float64(weights[i])
        if b1 == b0:
            C[i, CD] = END
            continue
        # the first block starts with its first docno as a plain word: no decoding needed
        C[i, CD] = np.int64(data[np.int64(block_offsets[b0])])
        if ub_off[t + 1] == ub_off[t]:  # one-block term: the block's bound
            ln = np.float64(bminlen[b0]) if mode == 0 else 0.0
            ub[i] = _bound(mode, w64[i], np.float64(bmax[b0]), ln, na, nb)
        for j in range(ub_off[t], ub_off[t + 1]):
            ub[i] = max(ub[i], _bound(mode, w64[i], np.float64(ub_val[j]), np.float64(ub_len[j]), na, nb))
    return C, ub, w64


@njit(cache=True, nogil=True, _nrt=False)
def _load_docs(block_last, block_offsets, dbits, data, C, bufd, i):
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
def _load_values(block_offsets, dbits, vbits, data, C, bufv, i):
    """Decode the values of cursor i's current block into bufv[i]."""
    b = C[i, BLK]
    n = BLOCK if b + 1 < C[i, STOP] else C[i, LAST]
    decode_block_values(block_offsets, dbits, vbits, data, b, b == C[i, FIRST], n, bufv, i)
    C[i, VDEC] = b


@njit(cache=True, nogil=True, _nrt=False)
def _next(block_last, block_offsets, dbits, data, C, bufd, i):
    """Advance cursor i to its next posting (it must sit on a posting of its current block)."""
    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
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
    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
    C[i, CD] = bufd[i, 0]


@njit(cache=True, nogil=True, _nrt=False)
def _shallow(block_last, C, i, target):
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


@njit(cache=True, nogil=True, _nrt=False)
def _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, target):
    """Advance cursor i to its first posting >= target (END if none)."""
    if C[i, CD] >= target:
        return
    _shallow(block_last, C, i, target)
    if C[i, BLK] >= C[i, STOP]:
        C[i, CD] = END
        return
    p = 0 if _load_docs(block_last, block_offsets, dbits, data, C, bufd, i) else C[i, POS]
    while bufd[i, p] < target:
        p += 1
    C[i, POS] = p
    C[i, CD] = bufd[i, p]


# ---------------------------------------------------------------------------------------------
# algorithms (on the segment tuple)


@njit(cache=True, nogil=True)
def _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k):
    term_blocks, term_last, block_last, block_offsets, dbits, vbits, data = (
        seg[0], seg[1], seg[5], seg[6], seg[7], seg[8], seg[11])
    acc = np.zeros(n_docs, np.float32)
    bd = np.empty((1, BLOCK), np.int32)
    bv = np.empty((1, BLOCK), np.uint32)
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        w = weights[i]
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        for b in range(first, end):
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            decode_block_docs(block_offsets, dbits, block_last, data, b, b == first, n, bd, 0)
            decode_block_values(block_offsets, dbits, vbits, data, b, b == first, n, bv, 0)
            if mode == 0:
                for j in range(n):
                    d = bd[0, j]
                    acc[d] += _contrib(0, w, bv[0, j], norm[d])
            else:
                for j in range(n):
                    acc[bd[0, j]] += _contrib(1, w, bv[0, j], np.float32(0.0))
    hs, hd = _new_heap(k)
    has_live = live.shape[0] > 0
    for d in range(n_docs):
        s = acc[d]
        if s > hs[0] and (not has_live or live[d]):
            _heap_push(hs, hd, s, d)
    return _heap_results(hs, hd)


WINDOW = 4096  # docs per MaxScore window (multiple of 32)
# ctz of a power of two < 2**32 by de Bruijn multiplication (fits int64: no overflow)
_DEBRUIJN_POS = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                          31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], np.int64)


@njit(cache=True, nogil=True)
def _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-max MaxScore over doc windows (as Lucene's MaxScoreBulkScorer).

    Docs are processed in windows of `WINDOW` docnos. In each window the terms are ranked by
    their largest block bound inside the window; the lowest ones whose bounds sum to at most
    the threshold are non-essential. Windows with no essential term are skipped; essential
    lists are scored term-at-a-time into a window buffer (tight loops over decoded blocks);
    a buffered doc whose partial score plus the non-essential bounds beats the threshold has
    the non-essential lists probed (largest bound first, abandoning as soon as it cannot win).
    Windows start at the next doc of a list that is essential by its term bound.
    """
    (term_blocks, term_last, ub_off, ub_val, ub_len, block_last, block_offsets,
     dbits, vbits, bmax, bminlen, data) = seg
    n = term_ids.shape[0]
    hs, hd = _new_heap(k)
    C, ub, w64 = _cursors(term_blocks, term_last, ub_off, ub_val, ub_len, block_offsets, bmax, bminlen,
                          data, mode, term_ids, weights, na, nb)
    bufd = np.empty((n, BLOCK), np.int32)
    bufv = np.empty((n, BLOCK), np.uint32)
    bub = np.zeros(n, np.float64)
    order = np.argsort(ub, kind="mergesort")  # ascending term bound
    prefix = np.empty(n, np.float64)
    run = 0.0
    for m in range(n):
        run += ub[order[m]]
        prefix[m] = run
    acc = np.empty(WINDOW, np.float64)  # partial score (essential terms) of buffered docs
    cw = np.empty((WINDOW, n), np.float32)  # their per-term contributions, for the exact sum
    bits = np.zeros(WINDOW // 32, np.int64)  # buffered docs (32 per word)
    wm = np.zeros(n, np.float64)  # window bound of each term
    word = np.arange(n)  # terms by ascending window bound
    slack = 1.0 + (n + 2) * 2.0**-23  # covers float32 rounding of the final sum
    has_live = live.shape[0] > 0
    thr = 0.0
    wmax = 0
    while True:
        fe = 0  # order[:fe]: terms that cannot make a doc competitive even together
        while fe < n and prefix[fe] <= thr:
            fe += 1
        wmin = END
        for m in range(fe, n):
            wmin = min(wmin, C[order[m], CD])
        if wmin >= END:
            break
        wmin = max(wmin, wmax)
        wmax = min(wmin + WINDOW, END)
        # window bounds: largest bound of the blocks that overlap [wmin, wmax); `same`: the
        # first docno where some list's block (or a list's next doc) would join the window
        same = END
        for i in range(n):
            wm[i] = 0.0
            if C[i, CD] >= wmax:
                same = min(same, C[i, CD])
                continue
            b = C[i, BLK]
            if b < C[i, STOP] and block_last[b] < wmin:
                _shallow(block_last, C, i, wmin)
                b = C[i, BLK]
                if b >= C[i, STOP]:
                    C[i, CD] = END  # exhausted
            while b < C[i, STOP]:
                if b == C[i, BLK]:  # the cursor's block: bound cached
                    if C[i, BUB_BLK] != b:
                        bub[i] = _bound(mode, w64[i], np.float64(bmax[b]),
                                        np.float64(bminlen[b]) if mode == 0 else 0.0, na, nb)
                        C[i, BUB_BLK] = b
                    bb = bub[i]
                else:
                    bb = _bound(mode, w64[i], np.float64(bmax[b]), np.float64(bminlen[b]) if mode == 0 else 0.0, na, nb)
                wm[i] = max(wm[i], bb)
                if block_last[b] >= wmax - 1:
                    same = min(same, np.int64(block_last[b]) + 1)
                    break
                b += 1
        for m in range(1, n):  # insertion sort by window bound
            i = word[m]
            j = m
            while j > 0 and wm[word[j - 1]] > wm[i]:
                word[j] = word[j - 1]
                j -= 1
            word[j] = i
        f = 0  # word[:f]: non-essential in this window
        ness = 0.0
        while f < n and ness + wm[word[f]] <= thr:
            ness += wm[word[f]]
            f += 1
        if f == n:  # nothing in this window can beat the threshold, nor up to `same`
            wmax = max(wmax, same)
            continue
        # essential lists, term at a time, into the window buffer
        lo, hi = WINDOW, -1
        for m in range(f, n):
            i = word[m]
            if C[i, CD] < wmin:
                _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
            w = weights[i]
            while C[i, CD] < wmax:
                if C[i, DEC] != C[i, BLK]:
                    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
                if C[i, VDEC] != C[i, BLK]:
                    _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                p, cnt = C[i, POS], C[i, CNT]
                while p < cnt:
                    d = bufd[i, p]
                    if d >= wmax:
                        break
                    c = _contrib(mode, w, bufv[i, p], norm[d] if mode == 0 else np.float32(0.0))
                    off = d - wmin
                    wd = off >> 5
                    bit = np.int64(1) << (off & 31)
                    if bits[wd] & bit == 0:  # first touch in this window
                        bits[wd] |= bit
                        lo, hi = min(lo, wd), max(hi, wd)
                        acc[off] = 0.0
                        for j in range(n):
                            cw[off, j] = 0.0
                    acc[off] += c
                    cw[off, i] = c
                    p += 1
                if p < cnt:
                    C[i, POS] = p
                    C[i, CD] = bufd[i, p]
                else:
                    C[i, POS] = cnt - 1
                    _next(block_last, block_offsets, dbits, data, C, bufd, i)
        # buffered docs in docno order: probe non-essential lists, then the exact score
        for wd in range(lo, hi + 1):
            x = bits[wd]
            bits[wd] = 0
            while x != 0:
                t = x & -x
                x ^= t
                off = wd * 32 + _DEBRUIJN_POS[((t * 0x077CB531) >> 27) & 31]
                d = wmin + off
                bsum = acc[off] + ness
                if bsum <= thr or (has_live and not live[d]):
                    continue
                m = f - 1
                while m >= 0 and bsum > thr:  # largest bound first
                    i = word[m]
                    bsum -= wm[i]
                    if C[i, CD] < d:
                        _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, d)
                    if C[i, CD] == d:
                        if C[i, VDEC] != C[i, BLK]:
                            _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                        c = _contrib(mode, weights[i], bufv[i, C[i, POS]], norm[d] if mode == 0 else np.float32(0.0))
                        cw[off, i] = c
                        bsum += c
                    m -= 1
                if bsum <= thr:
                    continue
                s = np.float32(0.0)
                for j in range(n):  # the exact score: float32 sum in query-term order
                    s += cw[off, j]
                if s > hs[0]:
                    _heap_push(hs, hd, s, d)
                    thr = hs[0] * theta / slack
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True)
def _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-Max WAND (Ding & Suel 2011): pivot by term bounds, then check block bounds."""
    (term_blocks, term_last, ub_off, ub_val, ub_len, block_last, block_offsets,
     dbits, vbits, bmax, bminlen, data) = seg
    n = term_ids.shape[0]
    hs, hd = _new_heap(k)
    C, ub, w64 = _cursors(term_blocks, term_last, ub_off, ub_val, ub_len, block_offsets, bmax, bminlen,
                          data, mode, term_ids, weights, na, nb)
    bufd = np.empty((n, BLOCK), np.int32)
    bufv = np.empty((n, BLOCK), np.uint32)
    bub = np.zeros(n, np.float64)
    ordered = np.argsort(C[:, CD], kind="mergesort")  # cursors by current docno
    contrib = np.zeros(n, np.float32)
    slack = 1.0 + (n + 2) * 2.0**-23
    has_live = live.shape[0] > 0
    thr = 0.0
    while True:
        acc = 0.0
        p = -1
        for m in range(n):
            i = ordered[m]
            if C[i, CD] >= END:
                break
            acc += ub[i]
            if acc > thr:
                p = m
                break
        if p < 0:
            break
        pivot = C[ordered[p], CD]
        while p + 1 < n and C[ordered[p + 1], CD] == pivot:
            p += 1
        bsum = 0.0
        for m in range(p + 1):  # block bounds at the pivot
            i = ordered[m]
            b = C[i, BLK]
            if b < C[i, STOP] and block_last[b] < pivot:
                _shallow(block_last, C, i, pivot)
                b = C[i, BLK]
            if b >= C[i, STOP]:
                bub[i] = 0.0
            elif C[i, BUB_BLK] != b:
                bub[i] = _bound(mode, w64[i], np.float64(bmax[b]), np.float64(bminlen[b]) if mode == 0 else 0.0, na, nb)
                C[i, BUB_BLK] = b
            bsum += bub[i]
        if bsum > thr:
            if C[ordered[0], CD] == pivot:  # all of ordered[:p+1] sit on the pivot: score it
                if not has_live or live[pivot]:
                    nd = norm[pivot] if mode == 0 else np.float32(0.0)
                    for m in range(p + 1):
                        i = ordered[m]
                        if C[i, VDEC] != C[i, BLK]:
                            _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                        contrib[i] = _contrib(mode, weights[i], bufv[i, C[i, POS]], nd)
                    s = np.float32(0.0)
                    for i in range(n):  # float32 sum in query-term order
                        s += contrib[i]
                        contrib[i] = 0
                    if s > hs[0]:
                        _heap_push(hs, hd, s, pivot)
                        thr = hs[0] * theta / slack
                for m in range(p + 1):
                    i = ordered[m]
                    q = C[i, POS] + 1  # next posting, inlined fast path
                    if C[i, DEC] == C[i, BLK] and q < C[i, CNT]:
                        C[i, POS] = q
                        C[i, CD] = bufd[i, q]
                    else:
                        _next(block_last, block_offsets, dbits, data, C, bufd, i)
                lo = 0
            else:  # move the last list before the pivot up to it
                lo = p
                while C[ordered[lo], CD] == pivot:
                    lo -= 1
                _next_geq(block_last, block_offsets, dbits, data, C, bufd, ordered[lo], pivot)
                p = lo
        else:  # no doc up to the end of the current blocks can make it: jump past them
            nxt = END
            lo = 0
            for m in range(p + 1):
                i = ordered[m]
                if C[i, BLK] < C[i, STOP]:
                    nxt = min(nxt, np.int64(block_last[C[i, BLK]]) + 1)
                if ub[i] > ub[ordered[lo]]:
                    lo = m
            if p + 1 < n:
                nxt = min(nxt, C[ordered[p + 1], CD])
            if nxt <= pivot:
                nxt = pivot + 1
            _next_geq(block_last, block_offsets, dbits, data, C, bufd, ordered[lo], nxt)
            p = lo
        for m in range(p, lo - 1, -1):  # cursors ordered[lo:p+1] moved: bubble them into place
            while m + 1 < n and C[ordered[m + 1], CD] < C[ordered[m], CD]:
                ordered[m], ordered[m + 1] = ordered[m + 1], ordered[m]
                m += 1
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True)
def _search(seg, mode, n_docs, algo, term_ids, weights, norm, na, nb, live, k, theta):
    if algo == 0:
        return _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k)
    if algo == 1:
        return _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)
    return _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)


# ---------------------------------------------------------------------------------------------
# public entry points: plain arrays


@njit(cache=True, nogil=True)
def exhaustive(term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
               block_doc_bits, block_val_bits, block_max, block_min_len, data,
               mode, n_docs, term_ids, weights, norm, live, k):
    """Reference: term-at-a-time accumulation into a float32 array of n_docs, then top-k."""
    seg = (term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k)


@njit(cache=True, nogil=True)
def maxscore(term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
             block_doc_bits, block_val_bits, block_max, block_min_len, data,
             mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """Block-max MaxScore top-k; safe when theta == 1."""
    seg = (term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _maxscore(seg, mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True)
def block_max_wand(term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
                   block_doc_bits, block_val_bits, block_max, block_min_len, data,
                   mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """Block-Max WAND top-k; safe when theta == 1."""
    seg = (term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _bmw(seg, mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True)
def search(term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data,
           mode, n_docs, algo, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """One query with algorithm ``algo`` (`ALGORITHMS`: 0 exhaustive, 1 maxscore, 2 bmw)."""
    seg = (term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _search(seg, mode, n_docs, algo, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True, parallel=True)
def search_batch(term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
                 block_doc_bits, block_val_bits, block_max, block_min_len, data,
                 mode, n_docs, algo, query_offsets, query_terms, query_weights, norm, norm_a, norm_b,
                 live, k, theta, out_docs, out_scores, out_counts):
    """Many queries in parallel (prange). Query q is ``query_terms/weights[query_offsets[q]:
    query_offsets[q+1]]``; its results go to ``out_docs/out_scores[q, :out_counts[q]]`` (shape [Q, k])."""
    seg = (term_blocks, term_last_count, term_ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    for q in prange(query_offsets.shape[0] - 1):
        a, e = query_offsets[q], query_offsets[q + 1]
        d, s = _search(seg, mode, n_docs, algo, query_terms[a:e], query_weights[a:e], norm,
                       norm_a, norm_b, live, k, theta)
        m = d.shape[0]
        out_counts[q] = m
        out_docs[q, :m] = d
        out_scores[q, :m] = s
