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

Implementation note: numba increfs/decrefs every array passed to a call, with atomic
operations that cost far more than a posting's work. So each algorithm is a thin allocating
wrapper around a ``*_run`` function compiled without reference counting (``_nrt=False``, like
all the helpers it calls), which therefore must not allocate.
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
WINDOW = 4096  # docs per MaxScore window (multiple of 32)
# trailing-zero count of a power of two below 2**32 by de Bruijn multiplication (no overflow)
_DEBRUIJN_POS = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                          31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], np.int64)

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
def _block_bound(bmax, bminlen, mode, w, b, na, nb):
    """Upper bound of a contribution of weight w within block b."""
    return _bound(mode, w, np.float64(bmax[b]), np.float64(bminlen[b]) if mode == 0 else 0.0, na, nb)


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
    """Replace the worst entry (root) by (s, d); caller checked that (s, d) beats it."""
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


# ---------------------------------------------------------------------------------------------
# cursors, one per query term: a block pointer that may run ahead of the posting ("shallow"
# moves for block bounds) and a lazily decoded block. The state is one int64 matrix, a column
# per field:
BLK, FIRST, STOP, LAST, POS, CNT, DEC, VDEC, CD, BUB_BLK, CDEC = range(11)
# current block, term's first block, term's end block, postings in the term's last block,
# position in the decoded block, postings in it, block whose docnos / values are decoded,
# current docno (END when exhausted), block whose bound is cached in `bub`, block whose
# contributions are in `bufc`.


@njit(cache=True, nogil=True)
def _cursors(seg, mode, term_ids, weights, na, nb):
    """Allocate and open the query's cursors: (C, term bounds, float64 weights, bufd, bufv,
    bufc, bub) where bufd/bufv/bufc[i] hold cursor i's decoded docnos, values, contributions
    and bub[i] the bound of block C[i, BUB_BLK]."""
    n = term_ids.shape[0]
    C = np.full((n, 11), -1, np.int64)
    ub = np.zeros(n, np.float64)
    w64 = np.empty(n, np.float64)
    _open_cursors(seg, mode, term_ids, weights, na, nb, C, ub, w64)
    return (C, ub, w64, np.empty((n, BLOCK), np.int32), np.empty((n, BLOCK), np.uint32),
            np.empty((n, BLOCK), np.float32), np.zeros(n, np.float64))


@njit(cache=True, nogil=True, _nrt=False)
def _open_cursors(seg, mode, term_ids, weights, na, nb, C, ub, w64):
    term_blocks, term_last, ub_off, ub_val, ub_len = seg[0], seg[1], seg[2], seg[3], seg[4]
    block_offsets, bmax, bminlen, data = seg[6], seg[9], seg[10], seg[11]
    for i in range(term_ids.shape[0]):
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
            ub[i] = _block_bound(bmax, bminlen, mode, w64[i], b0, na, nb)
        for j in range(ub_off[t], ub_off[t + 1]):
            ub[i] = max(ub[i], _bound(mode, w64[i], np.float64(ub_val[j]), np.float64(ub_len[j]), na, nb))


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
def _load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i):
    """Decode cursor i's current block and compute all its contributions into bufc[i]."""
    block_last, block_offsets, dbits, vbits, data = seg[5], seg[6], seg[7], seg[8], seg[11]
    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
    if C[i, VDEC] != C[i, BLK]:
        _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
    w = weights[i]
    if mode == 0:
        for j in range(C[i, CNT]):
            v = np.float32(bufv[i, j])
            bufc[i, j] = w * v / (v + norm[bufd[i, j]])
    else:
        for j in range(C[i, CNT]):
            bufc[i, j] = w * np.float32(bufv[i, j])
    C[i, CDEC] = C[i, BLK]


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


@njit(cache=True, nogil=True, _nrt=False)
def _cursor_bound(bmax, bminlen, mode, C, bub, w64, i, na, nb):
    """Bound of cursor i's current block (cached; 0 when exhausted)."""
    b = C[i, BLK]
    if b >= C[i, STOP]:
        return 0.0
    if C[i, BUB_BLK] != b:
        bub[i] = _block_bound(bmax, bminlen, mode, w64[i], b, na, nb)
        C[i, BUB_BLK] = b
    return bub[i]


# ---------------------------------------------------------------------------------------------
# exhaustive (reference)


@njit(cache=True, nogil=True)
def _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k):
    """Term at a time into a float32 accumulator of n_docs, in query-term order, then top-k."""
    acc = np.zeros(n_docs, np.float32)
    hs, hd = np.zeros(k, np.float32), np.full(k, -1, np.int32)
    _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, np.empty((1, BLOCK), np.int32),
                    np.empty((1, BLOCK), np.uint32), hs, hd)
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True, _nrt=False)
def _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, bd, bv, hs, hd):
    term_blocks, term_last, block_last, block_offsets, dbits, vbits, data = (
        seg[0], seg[1], seg[5], seg[6], seg[7], seg[8], seg[11])
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
    has_live = live.shape[0] > 0
    for d in range(acc.shape[0]):
        s = acc[d]
        if s > hs[0] and (not has_live or live[d]):
            _heap_push(hs, hd, s, d)


# ---------------------------------------------------------------------------------------------
# MaxScore


@njit(cache=True, nogil=True)
def _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-max MaxScore over doc windows (as Lucene's MaxScoreBulkScorer).

    Docs are processed in windows of at most `WINDOW` docnos, starting at the next doc of a
    list that is essential by its term bound. In each window the terms are ranked by their
    largest block bound inside the window; the lowest ones whose bounds sum to at most the
    threshold are non-essential. A window with no essential term is skipped (up to where a
    block bound changes). Essential lists are scored term-at-a-time into window buffers, in
    tight loops over decoded blocks; then, in docno order, a buffered doc whose partial score
    plus the non-essential bounds beats the threshold has the non-essential lists probed
    (largest bound first, abandoning as soon as it cannot win). When every term is essential
    the lists are added in query-term order, so the float32 buffer holds exact scores.
    """
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = _cursors(seg, mode, term_ids, weights, na, nb)
    order = np.argsort(ub, kind="mergesort")  # ascending term bound
    hs, hd = np.zeros(k, np.float32), np.full(k, -1, np.int32)
    nw = (n + 63) >> 6
    _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, np.empty(n, np.float64), np.zeros(WINDOW, np.float32), np.empty(WINDOW, np.float64),
                  np.empty((WINDOW, n), np.float32), np.empty((WINDOW, nw), np.int64),
                  np.zeros(WINDOW // 32, np.int64), np.zeros(n, np.float64), np.arange(n), hs, hd)
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True, _nrt=False)
def _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, prefix, acc32, acc, cw, tmask, bits, wm, word, hs, hd):
    """`_maxscore`'s work. Buffers: prefix[m] = sum of ub[order[:m+1]]; acc32 (kept zeroed):
    exact scores in all-essential windows; else acc / cw / tmask: partial score, per-term
    contributions and which terms those are, of each buffered doc; bits: buffered docs (32 per
    word); wm: window bound per term; word: terms by ascending window bound."""
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg[5], seg[6], seg[7], seg[8], seg[9], seg[10], seg[11])
    n = weights.shape[0]
    run = 0.0
    for m in range(n):
        run += ub[order[m]]
        prefix[m] = run
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
            _shallow(block_last, C, i, wmin)
            b = C[i, BLK]
            if b >= C[i, STOP]:
                C[i, CD] = END  # exhausted
            else:
                wm[i] = _cursor_bound(bmax, bminlen, mode, C, bub, w64, i, na, nb)
            while b < C[i, STOP]:
                if block_last[b] >= wmax - 1:
                    same = min(same, np.int64(block_last[b]) + 1)
                    break
                b += 1
                if b < C[i, STOP]:
                    wm[i] = max(wm[i], _block_bound(bmax, bminlen, mode, w64[i], b, na, nb))
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
        lo, hi = WINDOW, -1  # range of touched words in `bits`
        if f == 0:
            # every term essential: add the lists in query-term order into acc32 (exact)
            for i in range(n):
                _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
                if C[i, CD] < wmax:
                    lo = min(lo, (C[i, CD] - wmin) >> 5)
                while C[i, CD] < wmax:
                    if C[i, CDEC] != C[i, BLK]:
                        _load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                    p, cnt = C[i, POS], C[i, CNT]
                    while p < cnt and bufd[i, p] < wmax:
                        off = bufd[i, p] - wmin
                        acc32[off] += bufc[i, p]
                        bits[off >> 5] |= np.int64(1) << (off & 31)
                        p += 1
                    hi = max(hi, (bufd[i, p - 1] - wmin) >> 5)
                    if p < cnt:
                        C[i, POS] = p
                        C[i, CD] = bufd[i, p]
                    else:
                        C[i, POS] = cnt - 1
                        _next(block_last, block_offsets, dbits, data, C, bufd, i)
            for wd in range(lo, hi + 1):
                x = bits[wd]
                bits[wd] = 0
                while x != 0:
                    t = x & -x
                    x ^= t
                    off = wd * 32 + _DEBRUIJN_POS[((t * 0x077CB531) >> 27) & 31]
                    s = acc32[off]
                    acc32[off] = 0.0
                    if s > hs[0] and (not has_live or live[wmin + off]):
                        _heap_push(hs, hd, s, wmin + off)
                        thr = hs[0] * theta / slack
            continue
        # essential lists, in any order, into acc / cw / tmask
        for m in range(f, n):
            i = word[m]
            _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
            ib = np.int64(1) << (i & 63)
            iw = i >> 6
            if C[i, CD] < wmax:
                lo = min(lo, (C[i, CD] - wmin) >> 5)
            while C[i, CD] < wmax:
                if C[i, CDEC] != C[i, BLK]:
                    _load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                p, cnt = C[i, POS], C[i, CNT]
                while p < cnt and bufd[i, p] < wmax:
                    off = bufd[i, p] - wmin
                    c = bufc[i, p]
                    wd = off >> 5
                    bit = np.int64(1) << (off & 31)
                    if bits[wd] & bit == 0:  # first touch in this window
                        bits[wd] |= bit
                        acc[off] = 0.0
                        for j in range(tmask.shape[1]):
                            tmask[off, j] = 0
                    acc[off] += c
                    cw[off, i] = c
                    tmask[off, iw] |= ib
                    p += 1
                hi = max(hi, (bufd[i, p - 1] - wmin) >> 5)
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
                    _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, d)
                    if C[i, CD] == d:
                        if C[i, VDEC] != C[i, BLK]:
                            _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                        c = _contrib(mode, weights[i], bufv[i, C[i, POS]], norm[d] if mode == 0 else np.float32(0.0))
                        cw[off, i] = c
                        tmask[off, i >> 6] |= np.int64(1) << (i & 63)
                        bsum += c
                    m -= 1
                if bsum <= thr:
                    continue
                s = np.float32(0.0)
                for j in range(n):  # the exact score: float32 sum in query-term order
                    if (tmask[off, j >> 6] >> (j & 63)) & 1:
                        s += cw[off, j]
                if s > hs[0]:
                    _heap_push(hs, hd, s, d)
                    thr = hs[0] * theta / slack


# ---------------------------------------------------------------------------------------------
# Block-Max WAND


@njit(cache=True, nogil=True)
def _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-Max WAND (Ding & Suel 2011): pivot by term bounds, then check block bounds."""
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = _cursors(seg, mode, term_ids, weights, na, nb)
    ordered = np.argsort(C[:, CD], kind="mergesort")  # cursors by current docno
    hs, hd = np.zeros(k, np.float32), np.full(k, -1, np.int32)
    _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered,
             np.zeros(n, np.float32), hs, hd)
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True, _nrt=False)
def _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered, contrib, hs, hd):
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg[5], seg[6], seg[7], seg[8], seg[9], seg[10], seg[11])
    n = weights.shape[0]
    slack = 1.0 + (n + 2) * 2.0**-23  # covers float32 rounding of the final sum
    has_live = live.shape[0] > 0
    thr = 0.0
    while True:
        acc = 0.0  # pivot: first cursor where the term bounds so far beat the threshold
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
            _shallow(block_last, C, i, pivot)
            bsum += _cursor_bound(bmax, bminlen, mode, C, bub, w64, i, na, nb)
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
                    for i in range(n):  # the exact score: float32 sum in query-term order
                        s += contrib[i]
                        contrib[i] = 0
                    if s > hs[0]:
                        _heap_push(hs, hd, s, pivot)
                        thr = hs[0] * theta / slack
                for m in range(p + 1):
                    _next(block_last, block_offsets, dbits, data, C, bufd, ordered[m])
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


# ---------------------------------------------------------------------------------------------
# public entry points: plain arrays


@njit(cache=True, nogil=True)
def _search(seg, mode, n_docs, algo, term_ids, weights, norm, na, nb, live, k, theta):
    if algo == 0:
        return _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k)
    if algo == 1:
        return _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)
    return _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)


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
