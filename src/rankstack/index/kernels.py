"""Numba top-k query kernels over block-compressed postings (see `rankstack.index.postings`).

Every public kernel takes the segment's thirteen arrays first (``SEGMENT_ARRAYS`` order), then

* ``mode`` 0 BM25 / 1 impact, ``n_docs`` (docs in the segment),
* ``term_ids`` int32[n] (distinct) and ``weights`` float32[n] (>= 0),
* ``norm`` = (``codes`` [n_docs], ``table`` float32): doc d's BM25 norm is ``table[codes[d]]``, as
  Lucene keeps one byte per doc and a 256-entry norm cache (codes: the memory-mapped length
  bytes, or exact lengths; both empty in impact mode), with ``norm_a``, ``norm_b`` such that
  ``norm(d) == float32(norm_a + norm_b * len[d])`` up to rounding (``norm_a = k1*(1-b)``,
  ``norm_b = k1*b/avgdl``): upper bounds evaluate the norm of a block's shortest doc this way,
* ``live`` bool[n_docs] (False: deleted) or an empty array for "all live", ``k`` >= 1,
* ``theta`` (pruning kernels): >= 1, multiplies the top-k threshold when deciding to skip;
  1 is safe (exact), larger is faster and may miss documents (returned scores stay exact).

A doc's score is the float32 sum, in query-term order from 0.0f, of ``w*tf/(tf+norm(d))``
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
    "term_blocks", "term_last_count", "ub_terms", "ub_offsets", "ub_values", "ub_lengths", "block_last",
    "block_offsets", "block_doc_bits", "block_val_bits", "block_max", "block_min_len", "data",
)
ALGORITHMS = {"exhaustive": 0, "maxscore": 1, "bmw": 2}
END = 2**31 - 1  # docno of an exhausted cursor
_UB_SLACK = 1e-6  # relative padding of per-term/per-block upper bounds (float32 rounding)
WINDOW = 4096  # docs per MaxScore window (multiple of 32)
_MERGE_PER_BLOCK = 16  # MaxScore scans a list's blocks rather than skip when more candidates
# trailing-zero count of a power of two below 2**32 by de Bruijn multiplication (no overflow)
_DEBRUIJN_POS = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                          31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], np.int64)

# ---------------------------------------------------------------------------------------------
# scoring and top-k heap


@njit(cache=True, nogil=True, inline="always")
def _doc_norm(norm, d):
    """BM25 norm of doc d (see the module docstring)."""
    return norm[1][norm[0][d]]


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


# Top-k collector: candidates beating the threshold are appended to a buffer of (score,
# docno) of 2k + 16 entries; when it fills, the k best are moved to its front (quickselect)
# and the threshold becomes the worst of them. Cheaper than a heap for large k; results are
# sorted once at the end. Docs are offered in ascending docno order, so a doc that only ties
# the threshold would rank below the k kept ones: offering requires score > threshold.


@njit(cache=True, nogil=True, inline="always")
def _better(s1, d1, s2, d2):
    return s1 > s2 or (s1 == s2 and d1 < d2)


@njit(cache=True, nogil=True)
def _topk_new(k):
    """(scores, docnos, [count], [threshold]) of an empty collector."""
    cap = 2 * k + 16
    return np.zeros(cap, np.float32), np.zeros(cap, np.int32), np.zeros(1, np.int64), np.zeros(1, np.float32)


@njit(cache=True, nogil=True, _nrt=False)
def _keep_best(bs, bd, n, k):
    """Move the k best of the n entries to the front (unordered); quickselect."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1  # median of three as pivot, moved to hi
        if _better(bs[mid], bd[mid], bs[lo], bd[lo]):
            bs[mid], bs[lo] = bs[lo], bs[mid]
            bd[mid], bd[lo] = bd[lo], bd[mid]
        if _better(bs[hi], bd[hi], bs[lo], bd[lo]):
            bs[hi], bs[lo] = bs[lo], bs[hi]
            bd[hi], bd[lo] = bd[lo], bd[hi]
        if _better(bs[mid], bd[mid], bs[hi], bd[hi]):
            bs[mid], bs[hi] = bs[hi], bs[mid]
            bd[mid], bd[hi] = bd[hi], bd[mid]
        ps, pd = bs[hi], bd[hi]
        j = lo
        for i in range(lo, hi):
            if _better(bs[i], bd[i], ps, pd):
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
def _offer(bs, bd, kn, kth, k, s, d):
    """Add (s, d), s > kth[0], to the collector; updates the threshold kth[0] when it can."""
    n = kn[0]
    bs[n] = s
    bd[n] = d
    n += 1
    if n == bs.shape[0]:
        _keep_best(bs, bd, n, k)
        n = k
    if n == k:  # k docs held: the worst of them is a lower bound of the final k-th score
        t = bs[0]
        for i in range(1, k):
            t = min(t, bs[i])
        kth[0] = t
    kn[0] = n


@njit(cache=True, nogil=True, _nrt=False)
def _sift_down(hs, hd, i, size):
    """Min-heap on "worse" order (root = worst entry)."""
    s, d = hs[i], hd[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _better(hs[c], hd[c], hs[c + 1], hd[c + 1]):
            c += 1
        if not _better(s, d, hs[c], hd[c]):
            break
        hs[i], hd[i] = hs[c], hd[c]
        i = c
    hs[i], hd[i] = s, d


@njit(cache=True, nogil=True)
def _topk_results(bs, bd, kn, k):
    """The collected top k as (docnos, scores), best first (heap sort)."""
    m = kn[0]
    if m > k:
        _keep_best(bs, bd, m, k)
        m = k
    for i in range(m // 2 - 1, -1, -1):
        _sift_down(bs, bd, i, m)
    for end in range(m - 1, 0, -1):
        bs[0], bs[end] = bs[end], bs[0]
        bd[0], bd[end] = bd[end], bd[0]
        _sift_down(bs, bd, 0, end)
    return bd[:m].copy(), bs[:m].copy()


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
def _find(ascending, x):
    """Position of x in an ascending array, or -1."""
    lo = lower_bound(ascending, 0, ascending.shape[0], x)
    return lo if lo < ascending.shape[0] and ascending[lo] == x else -1


@njit(cache=True, nogil=True, _nrt=False)
def _open_cursors(seg, mode, term_ids, weights, na, nb, C, ub, w64):
    term_blocks, term_last, ub_terms, ub_off, ub_val, ub_len = seg[0], seg[1], seg[2], seg[3], seg[4], seg[5]
    block_offsets, bmax, bminlen, data = seg[7], seg[10], seg[11], seg[12]
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
        j = _find(ub_terms, t)
        if j < 0:  # one-block term: the block's bound
            ub[i] = _block_bound(bmax, bminlen, mode, w64[i], b0, na, nb)
            continue
        for p in range(ub_off[j], ub_off[j + 1]):
            ub[i] = max(ub[i], _bound(mode, w64[i], np.float64(ub_val[p]), np.float64(ub_len[p]), na, nb))


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
    block_last, block_offsets, dbits, vbits, data = seg[6], seg[7], seg[8], seg[9], seg[12]
    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
    if C[i, VDEC] != C[i, BLK]:
        _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
    w = weights[i]
    if mode == 0:
        for j in range(C[i, CNT]):
            v = np.float32(bufv[i, j])
            bufc[i, j] = w * v / (v + _doc_norm(norm, bufd[i, j]))
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
    bs, bd, kn, kth = _topk_new(k)
    _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, np.empty((1, BLOCK), np.int32),
                    np.empty((1, BLOCK), np.uint32), bs, bd, kn, kth, k)
    return _topk_results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, bd, bv, ts, td, kn, kth, k):
    term_blocks, term_last, block_last, block_offsets, dbits, vbits, data = (
        seg[0], seg[1], seg[6], seg[7], seg[8], seg[9], seg[12])
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
                    acc[d] += _contrib(0, w, bv[0, j], _doc_norm(norm, d))
            else:
                for j in range(n):
                    acc[bd[0, j]] += _contrib(1, w, bv[0, j], np.float32(0.0))
    has_live = live.shape[0] > 0
    for d in range(acc.shape[0]):
        s = acc[d]
        if s > kth[0] and (not has_live or live[d]):
            _offer(ts, td, kn, kth, k, s, d)


# ---------------------------------------------------------------------------------------------
# MaxScore


@njit(cache=True, nogil=True, _nrt=False)
def _add_run(docs, contribs, p, cnt, wmin, wmax, acc32, bits):
    """acc32[d - wmin] += contribs[p] for the postings from p with docno d < wmax, marking the
    docs in bits; returns the position after them."""
    while p < cnt:
        d = docs[p]
        if d >= wmax:
            break
        off = d - wmin
        acc32[off] += contribs[p]
        bits[off >> 5] |= np.int64(1) << (off & 31)
        p += 1
    return p


@njit(cache=True, nogil=True, _nrt=False)
def _buffer_run(docs, contribs, p, cnt, wmin, wmax, i, acc, cw, tmask, bits):
    """Buffer term i's contributions at the postings from p with docno < wmax: partial score
    in acc, the contribution in cw and a flag in tmask (reset at a doc's first touch)."""
    ib = np.int64(1) << (i & 63)
    iw = i >> 6
    while p < cnt:
        d = docs[p]
        if d >= wmax:
            break
        off = d - wmin
        c = contribs[p]
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
    return p


@njit(cache=True, nogil=True, _nrt=False)
def _collect(acc32, bits, lo, hi, wmin, live, bs, bd, kn, kth, k, tscale):
    """Offer the docs marked in bits[lo:hi+1] with their scores in acc32 to the collector, clearing
    both; returns the new threshold (tscale * worst score kept)."""
    has_live = live.shape[0] > 0
    for wd in range(lo, hi + 1):
        x = bits[wd]
        bits[wd] = 0
        while x != 0:
            t = x & -x
            x ^= t
            off = wd * 32 + _DEBRUIJN_POS[((t * 0x077CB531) >> 27) & 31]
            s = acc32[off]
            acc32[off] = 0.0
            if s > kth[0] and (not has_live or live[wmin + off]):
                _offer(bs, bd, kn, kth, k, s, wmin + off)
    return kth[0] * tscale


@njit(cache=True, nogil=True)
def _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-max MaxScore over doc windows (in the spirit of Lucene's MaxScoreBulkScorer).

    Docs are processed in windows of at most `WINDOW` docnos, starting at the next doc of a
    list that is essential by its term bound. In each window the terms are ranked by their
    largest block bound inside the window; the lowest ones whose bounds sum to at most the
    threshold are non-essential. A window with no essential term is skipped (up to where a
    block bound changes). When every term is essential, the lists are added term at a time,
    in query-term order, into a float32 window buffer, which then holds exact scores.
    Otherwise the essential lists are buffered (partial score and per-term contributions);
    the buffered docs whose partial score plus the non-essential bounds beats the threshold
    are candidates, refined one non-essential list at a time, largest bound first: the list
    is scanned through the window when candidates are dense, else skipped to each candidate;
    each step drops the candidates that can no longer win. Survivors get their exact score.
    """
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = _cursors(seg, mode, term_ids, weights, na, nb)
    order = np.argsort(ub, kind="mergesort")  # ascending term bound
    bs, bd, kn, kth = _topk_new(k)
    nw = (n + 63) >> 6
    _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, np.empty(n, np.float64), np.zeros(WINDOW, np.float32), np.empty(WINDOW, np.float64),
                  np.empty((WINDOW, n), np.float32), np.empty((WINDOW, nw), np.int64),
                  np.zeros(WINDOW // 32, np.int64), np.zeros(n, np.float64), np.arange(n), np.zeros(n, np.int64),
                  np.empty(WINDOW, np.int64), np.zeros(WINDOW // 32, np.int64), bs, bd, kn, kth, k)
    return _topk_results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, prefix, acc32, acc, cw, tmask, bits, wm, word, nbw, cands, cbits, bs, bd, kn, kth, k):
    """`_maxscore`'s work. Buffers: prefix[m] = sum of ub[order[:m+1]]; acc32 (kept zeroed):
    exact scores in all-essential windows; else acc / cw / tmask: partial score, per-term
    contributions and which terms those are, of each buffered doc; bits: buffered docs (32 per
    word); wm: window bound per term; word: terms by ascending window bound; nbw: blocks of
    each list in the window; cands / cbits: candidate docs as a list and as bits."""
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg[6], seg[7], seg[8], seg[9], seg[10], seg[11], seg[12])
    n = weights.shape[0]
    run = 0.0
    for m in range(n):
        run += ub[order[m]]
        prefix[m] = run
    slack = 1.0 + (n + 2) * 2.0**-23  # covers float32 rounding of the final sum
    tscale = theta / slack  # threshold = tscale * worst score kept
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
            nbw[i] = 0
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
                nbw[i] += 1
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
                    cnt = C[i, CNT]
                    p = _add_run(bufd[i], bufc[i], C[i, POS], cnt, wmin, wmax, acc32, bits)
                    hi = max(hi, (bufd[i, p - 1] - wmin) >> 5)
                    if p < cnt:
                        C[i, POS] = p
                        C[i, CD] = bufd[i, p]
                    else:
                        C[i, POS] = cnt - 1
                        _next(block_last, block_offsets, dbits, data, C, bufd, i)
            thr = max(thr, _collect(acc32, bits, lo, hi, wmin, live, bs, bd, kn, kth, k, tscale))
            continue
        # essential lists, in any order, into acc / cw / tmask
        for m in range(f, n):
            i = word[m]
            _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
            if C[i, CD] < wmax:
                lo = min(lo, (C[i, CD] - wmin) >> 5)
            while C[i, CD] < wmax:
                if C[i, CDEC] != C[i, BLK]:
                    _load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                cnt = C[i, CNT]
                p = _buffer_run(bufd[i], bufc[i], C[i, POS], cnt, wmin, wmax, i, acc, cw, tmask, bits)
                hi = max(hi, (bufd[i, p - 1] - wmin) >> 5)
                if p < cnt:
                    C[i, POS] = p
                    C[i, CD] = bufd[i, p]
                else:
                    C[i, POS] = cnt - 1
                    _next(block_last, block_offsets, dbits, data, C, bufd, i)
        # candidates: buffered live docs whose partial score plus the non-essential bounds
        # beats the threshold; acc becomes that running bound
        nc = _candidates(acc, bits, lo, hi, wmin, ness, thr, live, cands, cbits)
        # refine them one non-essential list at a time, largest bound first
        m = f - 1
        while m >= 0 and nc > 0:
            i = word[m]
            if nc > _MERGE_PER_BLOCK * nbw[i]:  # dense: scan the list's postings in the window
                _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
                while C[i, CD] < wmax:
                    _load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
                    p, cnt = C[i, POS], C[i, CNT]
                    while p < cnt and bufd[i, p] < wmax:
                        off = bufd[i, p] - wmin
                        if (cbits[off >> 5] >> (off & 31)) & 1:
                            C[i, POS] = p
                            if C[i, VDEC] != C[i, BLK]:
                                _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                            nd = _doc_norm(norm, wmin + off) if mode == 0 else np.float32(0.0)
                            c = _contrib(mode, weights[i], bufv[i, p], nd)
                            cw[off, i] = c
                            tmask[off, i >> 6] |= np.int64(1) << (i & 63)
                            acc[off] += c
                        p += 1
                    if p < cnt:
                        C[i, POS] = p
                        C[i, CD] = bufd[i, p]
                    else:
                        C[i, POS] = cnt - 1
                        _next(block_last, block_offsets, dbits, data, C, bufd, i)
            else:  # sparse: skip to each candidate
                for j in range(nc):
                    off = cands[j]
                    d = wmin + off
                    _next_geq(block_last, block_offsets, dbits, data, C, bufd, i, d)
                    if C[i, CD] == d:
                        if C[i, VDEC] != C[i, BLK]:
                            _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                        c = _contrib(mode, weights[i], bufv[i, C[i, POS]], _doc_norm(norm, d) if mode == 0 else np.float32(0.0))
                        cw[off, i] = c
                        tmask[off, i >> 6] |= np.int64(1) << (i & 63)
                        acc[off] += c
            nc = _refine(acc, cands, nc, cbits, wm[i], thr)
            m -= 1
        # survivors: exact score, float32 sum in query-term order
        for j in range(nc):
            off = cands[j]
            cbits[off >> 5] = 0
            s = np.float32(0.0)
            for t in range(n):
                if (tmask[off, t >> 6] >> (t & 63)) & 1:
                    s += cw[off, t]
            if s > kth[0]:
                _offer(bs, bd, kn, kth, k, s, wmin + off)
                thr = kth[0] * tscale


@njit(cache=True, nogil=True, _nrt=False)
def _candidates(acc, bits, lo, hi, wmin, ness, thr, live, cands, cbits):
    """List (ascending, in cands) and flag (in cbits) the docs buffered in bits[lo:hi+1] that
    are live and whose bound acc + ness beats thr, setting acc to that bound; clears bits."""
    has_live = live.shape[0] > 0
    nc = 0
    for wd in range(lo, hi + 1):
        x = bits[wd]
        bits[wd] = 0
        while x != 0:
            t = x & -x
            x ^= t
            off = wd * 32 + _DEBRUIJN_POS[((t * 0x077CB531) >> 27) & 31]
            bound = acc[off] + ness
            if bound > thr and (not has_live or live[wmin + off]):
                acc[off] = bound
                cands[nc] = off
                cbits[wd] |= t
                nc += 1
    return nc


@njit(cache=True, nogil=True, _nrt=False)
def _refine(acc, cands, nc, cbits, bound, thr):
    """Take a list's bound off the candidates' running bounds (its actual contribution was
    added) and drop those that no longer beat thr; returns how many remain."""
    k = 0
    for j in range(nc):
        off = cands[j]
        acc[off] -= bound
        if acc[off] > thr:
            cands[k] = off
            k += 1
        else:
            cbits[off >> 5] &= ~(np.int64(1) << (off & 31))
    return k


# ---------------------------------------------------------------------------------------------
# Block-Max WAND


@njit(cache=True, nogil=True)
def _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-Max WAND (Ding & Suel 2011): pivot by term bounds, then check block bounds."""
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = _cursors(seg, mode, term_ids, weights, na, nb)
    ordered = np.argsort(C[:, CD], kind="mergesort")  # cursors by current docno
    bs, bd, kn, kth = _topk_new(k)
    _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered,
             np.zeros(n, np.float32), bs, bd, kn, kth, k)
    return _topk_results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered, contrib,
             bs, bd, kn, kth, k):
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg[6], seg[7], seg[8], seg[9], seg[10], seg[11], seg[12])
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
                    nd = _doc_norm(norm, pivot) if mode == 0 else np.float32(0.0)
                    for m in range(p + 1):
                        i = ordered[m]
                        if C[i, VDEC] != C[i, BLK]:
                            _load_values(block_offsets, dbits, vbits, data, C, bufv, i)
                        contrib[i] = _contrib(mode, weights[i], bufv[i, C[i, POS]], nd)
                    s = np.float32(0.0)
                    for i in range(n):  # the exact score: float32 sum in query-term order
                        s += contrib[i]
                        contrib[i] = 0
                    if s > kth[0]:
                        _offer(bs, bd, kn, kth, k, s, pivot)
                        thr = kth[0] * theta / slack
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
def exhaustive(term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
               block_doc_bits, block_val_bits, block_max, block_min_len, data,
               mode, n_docs, term_ids, weights, norm, live, k):
    """Reference: term-at-a-time accumulation into a float32 array of n_docs, then top-k."""
    seg = (term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k)


@njit(cache=True, nogil=True)
def maxscore(term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
             block_doc_bits, block_val_bits, block_max, block_min_len, data,
             mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """Block-max MaxScore top-k; safe when theta == 1."""
    seg = (term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _maxscore(seg, mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True)
def block_max_wand(term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
                   block_doc_bits, block_val_bits, block_max, block_min_len, data,
                   mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """Block-Max WAND top-k; safe when theta == 1."""
    seg = (term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _bmw(seg, mode, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True)
def search(term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data,
           mode, n_docs, algo, term_ids, weights, norm, norm_a, norm_b, live, k, theta):
    """One query with algorithm ``algo`` (`ALGORITHMS`: 0 exhaustive, 1 maxscore, 2 bmw)."""
    seg = (term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    return _search(seg, mode, n_docs, algo, term_ids, weights, norm, norm_a, norm_b, live, k, theta)


@njit(cache=True, nogil=True, parallel=True)
def search_batch(term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
                 block_doc_bits, block_val_bits, block_max, block_min_len, data,
                 mode, n_docs, algo, query_offsets, query_terms, query_weights, norm, norm_a, norm_b,
                 live, k, theta, out_docs, out_scores, out_counts):
    """Many queries in parallel (prange). Query q is ``query_terms/weights[query_offsets[q]:
    query_offsets[q+1]]``; its results go to ``out_docs/out_scores[q, :out_counts[q]]`` (shape [Q, k])."""
    seg = (term_blocks, term_last_count, ub_terms, ub_offsets, ub_values, ub_lengths, block_last, block_offsets,
           block_doc_bits, block_val_bits, block_max, block_min_len, data)
    for q in prange(query_offsets.shape[0] - 1):
        a, e = query_offsets[q], query_offsets[q + 1]
        d, s = _search(seg, mode, n_docs, algo, query_terms[a:e], query_weights[a:e], norm,
                       norm_a, norm_b, live, k, theta)
        m = d.shape[0]
        out_counts[q] = m
        out_docs[q, :m] = d
        out_scores[q, :m] = s
