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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True, inline="always")
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
# cursors: per query term, a block pointer (may run ahead, "shallow") and a decoded block


@njit(cache=True, nogil=True)
def _cursors(seg, mode, term_ids, weights, na, nb):
    (term_blocks, term_last, ub_off, ub_val, ub_len, block_last, block_offsets,
     dbits, vbits, bmax, bminlen, data) = seg
    n = term_ids.shape[0]
    blk = np.empty(n, np.int64)  # current block
    bfirst = np.empty(n, np.int64)  # term's first block
    bend = np.empty(n, np.int64)  # term's end block
    last = np.empty(n, np.int64)  # postings in the term's last block
    pos = np.zeros(n, np.int64)  # position in the decoded block
    cnt = np.zeros(n, np.int64)  # postings in the decoded block
    dec = np.full(n, -1, np.int64)  # block whose docnos are in bufd
    vdec = np.full(n, -1, np.int64)  # block whose values are in bufv
    cd = np.empty(n, np.int64)  # current docno (END when exhausted)
    bub_blk = np.full(n, -1, np.int64)  # block whose upper bound is cached in bub
    bub = np.zeros(n, np.float64)
    ub = np.zeros(n, np.float64)  # term upper bound
    w64 = np.empty(n, np.float64)
    bufd = np.empty((n, BLOCK), np.int32)
    bufv = np.empty((n, BLOCK), np.uint32)
    for i in range(n):
        t = term_ids[i]
        bfirst[i] = term_blocks[t]
        blk[i] = term_blocks[t]
        bend[i] = term_blocks[t + 1]
        last[i] = term_last[t]
        w64[i] = np.float64(weights[i])
        if bend[i] == bfirst[i]:
            cd[i] = END
            continue
        # the first block starts with its first docno as a plain word: no decoding needed
        cd[i] = np.int64(data[np.int64(block_offsets[blk[i]])])
        if ub_off[t + 1] == ub_off[t]:  # one-block term: the block's bound
            ln = np.float64(bminlen[bfirst[i]]) if mode == 0 else 0.0
            ub[i] = _bound(mode, w64[i], np.float64(bmax[bfirst[i]]), ln, na, nb)
        for j in range(ub_off[t], ub_off[t + 1]):
            ub[i] = max(ub[i], _bound(mode, w64[i], np.float64(ub_val[j]), np.float64(ub_len[j]), na, nb))
    return (blk, bfirst, bend, last, pos, cnt, dec, vdec, cd, bub_blk, bub, ub, w64, bufd, bufv)


@njit(cache=True, nogil=True, inline="always")
def _load_docs(seg, st, i):
    """Decode the docnos of the cursor's current block if not yet done; True if it decoded."""
    blk, bfirst, bend, last, pos, cnt, dec, vdec, cd, bub_blk, bub, ub, w64, bufd, bufv = st
    b = blk[i]
    if dec[i] == b:
        return False
    n = BLOCK if b + 1 < bend[i] else last[i]
    decode_block_docs(seg[6], seg[7], seg[5], seg[11], b, b == bfirst[i], n, bufd[i])
    dec[i] = b
    cnt[i] = n
    return True


@njit(cache=True, nogil=True, inline="always")
def _value(seg, st, i):
    """Value of the posting under the cursor (decodes the block's values on first use)."""
    blk, bfirst, bend, last, pos, cnt, dec, vdec, cd, bub_blk, bub, ub, w64, bufd, bufv = st
    b = blk[i]
    if vdec[i] != b:
        n = BLOCK if b + 1 < bend[i] else last[i]
        decode_block_values(seg[6], seg[7], seg[8], seg[11], b, b == bfirst[i], n, bufv[i])
        vdec[i] = b
    return bufv[i, pos[i]]


@njit(cache=True, nogil=True)
def _next(seg, st, i):
    """Advance cursor i to its next posting (it must sit on a posting of its current block)."""
    blk, bfirst, bend, last, pos, cnt, dec, vdec, cd, bub_blk, bub, ub, w64, bufd, bufv = st
    _load_docs(seg, st, i)
    p = pos[i] + 1
    if p < cnt[i]:
        pos[i] = p
        cd[i] = bufd[i, p]
        return
    b = blk[i] + 1
    blk[i] = b
    if b >= bend[i]:
        cd[i] = END
        return
    _load_docs(seg, st, i)
    pos[i] = 0
    cd[i] = bufd[i, 0]


@njit(cache=True, nogil=True, inline="always")
def _shallow(seg, st, i, target):
    """Move cursor i's block pointer (not its posting) to the first block that may hold target."""
    blk, bend = st[0], st[2]
    block_last = seg[5]
    b, e = blk[i], bend[i]
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
    blk[i] = hi


@njit(cache=True, nogil=True)
def _next_geq(seg, st, i, target):
    """Advance cursor i to its first posting >= target (END if none)."""
    blk, bfirst, bend, last, pos, cnt, dec, vdec, cd, bub_blk, bub, ub, w64, bufd, bufv = st
    if cd[i] >= target:
        return
    _shallow(seg, st, i, target)
    if blk[i] >= bend[i]:
        cd[i] = END
        return
    p = 0 if _load_docs(seg, st, i) else pos[i]
    row = bufd[i]
    while row[p] < target:
        p += 1
    pos[i] = p
    cd[i] = row[p]


@njit(cache=True, nogil=True, inline="always")
def _block_ub(seg, st, mode, i, na, nb):
    """Upper bound of cursor i's contribution within its current block (0 when exhausted)."""
    blk, bend, bub_blk, bub, w64 = st[0], st[2], st[9], st[10], st[12]
    b = blk[i]
    if b >= bend[i]:
        return 0.0
    if bub_blk[i] != b:
        ln = np.float64(seg[10][b]) if mode == 0 else 0.0
        bub[i] = _bound(mode, w64[i], np.float64(seg[9][b]), ln, na, nb)
        bub_blk[i] = b
    return bub[i]


@njit(cache=True, nogil=True, inline="always")
def _ordered_sum(contrib):
    s = np.float32(0.0)
    for i in range(contrib.shape[0]):
        s += contrib[i]
    return s


# ---------------------------------------------------------------------------------------------
# algorithms (on the segment tuple)


@njit(cache=True, nogil=True)
def _exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k):
    term_blocks, term_last, block_last, block_offsets, dbits, vbits, data = (
        seg[0], seg[1], seg[5], seg[6], seg[7], seg[8], seg[11])
    acc = np.zeros(n_docs, np.float32)
    bd = np.empty(BLOCK, np.int32)
    bv = np.empty(BLOCK, np.uint32)
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        w = weights[i]
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        for b in range(first, end):
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            decode_block_docs(block_offsets, dbits, block_last, data, b, b == first, n, bd)
            decode_block_values(block_offsets, dbits, vbits, data, b, b == first, n, bv)
            if mode == 0:
                for j in range(n):
                    d = bd[j]
                    acc[d] += _contrib(0, w, bv[j], norm[d])
            else:
                for j in range(n):
                    acc[bd[j]] += _contrib(1, w, bv[j], np.float32(0.0))
    hs, hd = _new_heap(k)
    has_live = live.shape[0] > 0
    for d in range(n_docs):
        s = acc[d]
        if s > hs[0] and (not has_live or live[d]):
            _heap_push(hs, hd, s, d)
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True)
def _maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-max MaxScore (DAAT): lists whose upper bounds sum to at most the threshold are
    non-essential and only probed for candidates drawn from the essential lists."""
    n = term_ids.shape[0]
    hs, hd = _new_heap(k)
    st = _cursors(seg, mode, term_ids, weights, na, nb)
    cd, ub = st[8], st[11]
    order = np.argsort(ub, kind="mergesort")  # ascending upper bound
    prefix = np.empty(n, np.float64)
    run = 0.0
    for m in range(n):
        run += ub[order[m]]
        prefix[m] = run
    contrib = np.zeros(n, np.float32)
    bubs = np.zeros(n, np.float64)
    slack = 1.0 + (n + 2) * 2.0**-23  # covers float32 rounding of the final sum
    has_live = live.shape[0] > 0
    thr = 0.0
    fe = 0  # first essential list (in `order`)
    while fe < n and prefix[fe] <= thr:
        fe += 1
    cur = END
    for m in range(fe, n):
        cur = min(cur, cd[order[m]])
    while fe < n and cur < END:
        nd = norm[cur] if mode == 0 else np.float32(0.0)
        nxt = END
        partial = 0.0
        for m in range(fe, n):
            i = order[m]
            if cd[i] == cur:
                c = _contrib(mode, weights[i], _value(seg, st, i), nd)
                contrib[i] = c
                partial += c
                _next(seg, st, i)
            if cd[i] < nxt:
                nxt = cd[i]
        ok = not has_live or live[cur]
        if ok and fe > 0:
            bsum = partial
            for m in range(fe):
                i = order[m]
                _shallow(seg, st, i, cur)
                bubs[m] = _block_ub(seg, st, mode, i, na, nb)
                bsum += bubs[m]
            ok = bsum > thr
            m = fe - 1
            while ok and m >= 0:  # probe non-essential lists, largest bound first
                i = order[m]
                bsum -= bubs[m]
                _next_geq(seg, st, i, cur)
                if cd[i] == cur:
                    c = _contrib(mode, weights[i], _value(seg, st, i), nd)
                    contrib[i] = c
                    partial += c
                    bsum += c
                ok = bsum > thr
                m -= 1
        if ok:
            s = _ordered_sum(contrib)
            if s > hs[0]:
                _heap_push(hs, hd, s, cur)
                thr = hs[0] * theta / slack
                while fe < n and prefix[fe] <= thr:
                    fe += 1
        contrib[:] = 0
        cur = nxt
    return _heap_results(hs, hd)


@njit(cache=True, nogil=True, inline="always")
def _bubble(cd, ordered, m):
    """Restore ascending-docno order after ordered[m]'s cursor moved forward."""
    n = ordered.shape[0]
    while m + 1 < n and cd[ordered[m + 1]] < cd[ordered[m]]:
        ordered[m], ordered[m + 1] = ordered[m + 1], ordered[m]
        m += 1


@njit(cache=True, nogil=True)
def _bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-Max WAND (Ding & Suel 2011): pivot by term bounds, then check block bounds."""
    n = term_ids.shape[0]
    hs, hd = _new_heap(k)
    st = _cursors(seg, mode, term_ids, weights, na, nb)
    blk, bend, cd, ub = st[0], st[2], st[8], st[11]
    block_last = seg[5]
    ordered = np.argsort(cd, kind="mergesort")
    contrib = np.zeros(n, np.float32)
    slack = 1.0 + (n + 2) * 2.0**-23
    has_live = live.shape[0] > 0
    thr = 0.0
    while True:
        acc = 0.0
        p = -1
        for m in range(n):
            i = ordered[m]
            if cd[i] >= END:
                break
            acc += ub[i]
            if acc > thr:
                p = m
                break
        if p < 0:
            break
        pivot = cd[ordered[p]]
        while p + 1 < n and cd[ordered[p + 1]] == pivot:
            p += 1
        bsum = 0.0
        for m in range(p + 1):
            i = ordered[m]
            _shallow(seg, st, i, pivot)
            bsum += _block_ub(seg, st, mode, i, na, nb)
        if bsum > thr:
            if cd[ordered[0]] == pivot:  # all of ordered[:p+1] sit on the pivot: score it
                if not has_live or live[pivot]:
                    nd = norm[pivot] if mode == 0 else np.float32(0.0)
                    for m in range(p + 1):
                        i = ordered[m]
                        contrib[i] = _contrib(mode, weights[i], _value(seg, st, i), nd)
                    s = _ordered_sum(contrib)
                    if s > hs[0]:
                        _heap_push(hs, hd, s, pivot)
                        thr = hs[0] * theta / slack
                    contrib[:] = 0
                for m in range(p + 1):
                    _next(seg, st, ordered[m])
                for m in range(p, -1, -1):
                    _bubble(cd, ordered, m)
            else:  # move the last list before the pivot up to it
                m = p
                while cd[ordered[m]] == pivot:
                    m -= 1
                _next_geq(seg, st, ordered[m], pivot)
                _bubble(cd, ordered, m)
        else:  # no doc up to the end of the current blocks can make it: jump past them
            nxt = END
            best = 0
            for m in range(p + 1):
                i = ordered[m]
                if blk[i] < bend[i]:
                    nxt = min(nxt, np.int64(block_last[blk[i]]) + 1)
                if ub[i] > ub[ordered[best]]:
                    best = m
            if p + 1 < n:
                nxt = min(nxt, cd[ordered[p + 1]])
            if nxt <= pivot:
                nxt = pivot + 1
            _next_geq(seg, st, ordered[best], nxt)
            _bubble(cd, ordered, best)
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
