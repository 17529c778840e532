"""Block-max MaxScore over doc windows (in the spirit of Lucene's MaxScoreBulkScorer): `maxscore`.

Arguments as in `rankstack.index.kernels`; safe (exact) when theta == 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from rankstack.index import topk
from rankstack.index.cursors import (BLK, CD, CDEC, CNT, END, POS, STOP, cursor_bound, floor_threshold,
                                     load_contribs, load_docs, move_to, next_geq, open_cursors, shallow, value)
from rankstack.index.scoring import BM25, block_bound, contrib, doc_norm, sum_slack
from rankstack.index.unsigned import U

WINDOW = 4096  # docs per window (multiple of 32)
_CW_MIN = 8  # columns of the per-term contribution buffer at least (zeroed as one vector)
_MERGE_PER_BLOCK = 16  # a list's blocks are scanned rather than skipped when there are more candidates


@njit(cache=True, nogil=True, _nrt=False)
def _add_run(docs, contribs, p, cnt, wmin, wmax, acc32, bits, used):
    """acc32[d - wmin] += contribs[p] for the postings from p with docno d < wmax, marking the
    docs in bits and their words in used; returns the position after them."""
    while p < cnt:
        d = docs[U(p)]
        if d >= wmax:
            break
        off = d - wmin
        acc32[U(off)] += contribs[U(p)]
        wd = off >> 5
        bits[U(wd)] |= np.int64(1) << (off & 31)
        used[U(wd >> 6)] |= np.int64(1) << (wd & 63)
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def _zero_row(cw, off):
    """cw[off, :] = 0; with the usual width a constant count: a few vector stores, not a call to memset."""
    if cw.shape[1] == _CW_MIN:
        for j in range(_CW_MIN):
            cw[off, j] = 0.0
    else:
        for j in range(cw.shape[1]):
            cw[off, j] = 0.0


@njit(cache=True, nogil=True, _nrt=False)
def _candidate_run(docs, contribs, p, cnt, wmin, wmax, i, acc, cw, ness, thr, live, cands, cbits, nc):
    """With term i the only essential one: list (in cands, cbits) the live docs of its postings from p with docno
    < wmax whose contribution plus ness beats thr, as `_buffer_run` then `_candidates` would (acc: that bound; cw:
    the contribution, the rest of the row 0). Returns (position after them, number of candidates)."""
    has_live = live.shape[0] > 0
    while p < cnt:
        d = docs[U(p)]
        if d >= wmax:
            break
        c = contribs[U(p)]
        bound = np.float64(c) + ness
        if bound > thr and (not has_live or live[U(d)]):
            off = d - wmin
            acc[U(off)] = bound
            _zero_row(cw, U(off))
            cw[U(off), U(i)] = c
            cands[U(nc)] = off
            cbits[U(off >> 5)] |= np.int64(1) << (off & 31)
            nc += 1
        p += 1
    return p, nc


@njit(cache=True, nogil=True, _nrt=False)
def _buffer_run(docs, contribs, p, cnt, wmin, wmax, i, acc, cw, bits, used, ness, floor):
    """Buffer term i's contributions at the postings from p with docno < wmax: partial score
    in acc, the contribution in cw (a doc's row is zeroed at its first touch in the window),
    the doc marked in bits and its word of bits in used. A doc first touched here whose
    contribution plus ness is at most floor is not buffered."""
    while p < cnt:
        d = docs[U(p)]
        if d >= wmax:
            break
        off = d - wmin
        c = contribs[U(p)]
        wd = off >> 5
        bit = np.int64(1) << (off & 31)
        if bits[U(wd)] & bit == 0:  # first touch in this window
            if np.float64(c) + ness <= floor:
                p += 1
                continue
            bits[U(wd)] |= bit
            used[U(wd >> 6)] |= np.int64(1) << (wd & 63)
            acc[U(off)] = 0.0
            _zero_row(cw, U(off))
        acc[U(off)] += c
        cw[U(off), U(i)] = c
        p += 1
    return p


@njit(cache=True, nogil=True, _nrt=False)
def _marked(bits, used, out):
    """List in out, ascending, the docs marked in bits (its words marked in used), clearing both;
    returns how many."""
    n = 0
    for u in range(used.shape[0]):
        y = used[u]
        used[u] = 0
        while y != 0:
            wd = u * 64 + trailing_zeros(y)  # LLVM's cttz: one instruction
            y &= y - 1  # the lowest set bit cleared (wraps for the sign bit alone, to 0)
            x = bits[U(wd)]
            bits[U(wd)] = 0
            while x != 0:
                out[U(n)] = wd * 32 + trailing_zeros(x)
                x &= x - 1
                n += 1
    return n


@njit(cache=True, nogil=True, _nrt=False)
def _collect(acc32, bits, used, wmin, live, docs, bs, bd, kn, kth, k, tscale):
    """Offer the docs marked in bits (its words marked in used) with their scores in acc32 to the
    collector, clearing all three (docs: room for the window's docs); returns the new threshold
    (tscale * worst score kept)."""
    has_live = live.shape[0] > 0
    for j in range(_marked(bits, used, docs)):
        off = docs[j]
        s = acc32[U(off)]
        acc32[U(off)] = 0.0
        if s > kth[0] and (not has_live or live[U(wmin + off)]):
            topk.offer(bs, bd, kn, kth, k, s, wmin + off)
    return kth[0] * tscale


@njit(cache=True, nogil=True)
def maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-max MaxScore over doc windows (in the spirit of Lucene's MaxScoreBulkScorer).

    Docs are processed in windows of at most `WINDOW` docnos, starting at the next doc of a
    list that is essential by its term bound. In each window the terms are ranked by their
    largest block bound inside the window; the lowest ones whose bounds sum to at most the
    threshold are non-essential. A window with no essential term is skipped (up to where a
    block bound changes). The threshold starts at the query terms' floor (`cursors.floor_threshold`).
    When every term of two or more is essential, the lists are added term at a time, in
    query-term order, into a float32 window buffer, which then holds exact scores.
    Otherwise the essential lists are buffered (partial score and per-term contributions);
    the buffered docs whose partial score plus the non-essential bounds beats the threshold
    are candidates (with one essential list, they are taken from it directly), refined one
    non-essential list at a time, largest bound first: the list is scanned through the window
    when candidates are dense, else skipped to each candidate; each step drops the candidates
    that can no longer win. Survivors get their exact score.
    """
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = open_cursors(seg, mode, term_ids, weights, na, nb)
    order = np.argsort(ub, kind="mergesort")  # ascending term bound
    bs, bd, kn, kth = topk.new(k)
    kth[0] = floor_threshold(seg, mode, term_ids, weights, norm, live, k)
    _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, np.empty(n, np.float64), np.zeros(WINDOW, np.float32), np.empty(WINDOW, np.float64),
                  np.empty((WINDOW, max(n, _CW_MIN)), np.float32), np.zeros(WINDOW // 32, np.int64),
                  np.zeros(WINDOW // 2048, np.int64), np.zeros(n, np.float64), np.arange(n), np.zeros(n, np.int64),
                  np.empty(WINDOW, np.int64), np.zeros(WINDOW // 32, np.int64), bs, bd, kn, kth, k)
    return topk.results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _maxscore_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bufc, bub,
                  order, prefix, acc32, acc, cw, bits, used, wm, word, nbw, cands, cbits, bs, bd, kn, kth, k):
    """`maxscore`'s work. Buffers: prefix[m] = sum of ub[order[:m+1]]; acc32 (kept zeroed):
    exact scores in all-essential windows; else acc / cw: partial score and per-term
    contributions (0 for a term not seen) of each buffered doc; bits: buffered docs (32 per
    word); used: the words of bits in use (64 per word); wm: window bound per term; word:
    terms by ascending window bound; nbw: blocks of each list in the window; cands / cbits:
    candidate docs as a list and as bits."""
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg.block_last, seg.block_offsets, seg.block_doc_bits, seg.block_val_bits, seg.block_max, seg.block_min_len,
        seg.data)
    n = weights.shape[0]
    run = 0.0
    for m in range(n):
        run += ub[order[m]]
        prefix[m] = run
    tscale = theta / sum_slack(n)  # threshold = tscale * worst score kept (or the floor below the k-th best)
    thr = kth[0] * tscale
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
            shallow(block_last, C, i, wmin)
            b = C[i, BLK]
            if b >= C[i, STOP]:
                C[i, CD] = END  # exhausted
            else:
                wm[i] = cursor_bound(bmax, bminlen, mode, C, bub, w64, i, na, nb)
            while b < C[i, STOP]:
                nbw[i] += 1
                if block_last[b] >= wmax - 1:
                    same = min(same, np.int64(block_last[b]) + 1)
                    break
                b += 1
                if b < C[i, STOP]:
                    wm[i] = max(wm[i], block_bound(bmax, bminlen, mode, w64[i], b, na, nb))
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
        if f == 0 and n > 1:
            # every term essential: add the lists in query-term order into acc32 (exact); a one-term query takes
            # the one-essential-list path below instead, which keeps only the postings above the threshold
            for i in range(n):
                next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
                while C[i, CD] < wmax:
                    if C[i, CDEC] != C[i, BLK]:
                        load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                    cnt = C[i, CNT]
                    p = _add_run(bufd[i], bufc[i], C[i, POS], cnt, wmin, wmax, acc32, bits, used)
                    move_to(block_last, block_offsets, dbits, data, C, bufd, i, p)
            thr = max(thr, _collect(acc32, bits, used, wmin, live, cands, bs, bd, kn, kth, k, tscale))
            continue
        if f == n - 1:  # one essential list: its docs are the candidates, no buffering
            i = word[f]
            nc = 0
            next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
            while C[i, CD] < wmax:
                if C[i, CDEC] != C[i, BLK]:
                    load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                p, nc = _candidate_run(bufd[i], bufc[i], C[i, POS], C[i, CNT], wmin, wmax, i, acc, cw, ness, thr,
                                       live, cands, cbits, nc)
                move_to(block_last, block_offsets, dbits, data, C, bufd, i, p)
        else:
            # essential lists, largest window bound first, into acc / cw; a doc that only the
            # last one reaches is a candidate if that contribution plus the non-essential bounds
            # beats the threshold (the test `_candidates` makes), so the others are not buffered
            for m in range(n - 1, f - 1, -1):
                i = word[m]
                floor = thr if m == f else -1.0
                next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
                while C[i, CD] < wmax:
                    if C[i, CDEC] != C[i, BLK]:
                        load_contribs(seg, mode, weights, norm, C, bufd, bufv, bufc, i)
                    cnt = C[i, CNT]
                    p = _buffer_run(bufd[i], bufc[i], C[i, POS], cnt, wmin, wmax, i, acc, cw, bits, used, ness,
                                    floor)
                    move_to(block_last, block_offsets, dbits, data, C, bufd, i, p)
            # candidates: buffered live docs whose partial score plus the non-essential bounds
            # beats the threshold; acc becomes that running bound
            nc = _candidates(acc, bits, used, wmin, ness, thr, live, cands, cbits)
        # refine them one non-essential list at a time, largest bound first
        m = f - 1
        while m >= 0 and nc > 0:
            i = word[m]
            if nc > _MERGE_PER_BLOCK * nbw[i]:  # dense: scan the list's postings in the window
                next_geq(block_last, block_offsets, dbits, data, C, bufd, i, wmin)
                while C[i, CD] < wmax:
                    load_docs(block_last, block_offsets, dbits, data, C, bufd, i)
                    p, cnt = C[i, POS], C[i, CNT]
                    while p < cnt and bufd[U(i), U(p)] < wmax:
                        off = bufd[U(i), U(p)] - wmin
                        if (cbits[U(off >> 5)] >> (off & 31)) & 1:
                            C[i, POS] = p
                            nd = doc_norm(norm, wmin + off) if mode == BM25 else np.float32(0.0)
                            c = contrib(mode, weights[i], value(block_offsets, dbits, vbits, data, C, bufv, i), nd)
                            cw[U(off), U(i)] = c
                            acc[U(off)] += c
                        p += 1
                    move_to(block_last, block_offsets, dbits, data, C, bufd, i, p)
            else:  # sparse: skip to each candidate
                for j in range(nc):
                    off = cands[j]
                    d = wmin + off
                    next_geq(block_last, block_offsets, dbits, data, C, bufd, i, d)
                    if C[i, CD] == d:
                        nd = doc_norm(norm, d) if mode == BM25 else np.float32(0.0)
                        c = contrib(mode, weights[i], value(block_offsets, dbits, vbits, data, C, bufv, i), nd)
                        cw[U(off), U(i)] = c
                        acc[U(off)] += c
            nc = _refine(acc, cands, nc, cbits, wm[i], thr)
            m -= 1
        # survivors: exact score, float32 sum in query-term order (adding a term's 0 changes
        # no sum of non-negative contributions)
        for j in range(nc):
            off = cands[j]
            cbits[U(off >> 5)] = 0
            s = np.float32(0.0)
            for t in range(n):
                s += cw[U(off), t]
            if s > kth[0]:
                topk.offer(bs, bd, kn, kth, k, s, wmin + off)
                thr = kth[0] * tscale


@njit(cache=True, nogil=True, _nrt=False)
def _candidates(acc, bits, used, wmin, ness, thr, live, cands, cbits):
    """List (ascending, in cands) and flag (in cbits) the docs buffered in bits (its words
    marked in used) that are live and whose bound acc + ness beats thr, setting acc to that
    bound; clears bits and used."""
    has_live = live.shape[0] > 0
    nc = 0
    for j in range(_marked(bits, used, cands)):
        off = cands[j]
        bound = acc[U(off)] + ness
        if bound > thr and (not has_live or live[U(wmin + off)]):
            acc[U(off)] = bound
            cands[U(nc)] = off  # nc <= j: listed in place
            cbits[U(off >> 5)] |= np.int64(1) << (off & 31)
            nc += 1
    return nc


@njit(cache=True, nogil=True, _nrt=False)
def _refine(acc, cands, nc, cbits, bound, thr):
    """Take a list's bound off the candidates' running bounds (its actual contribution was
    added) and drop those that no longer beat thr; returns how many remain."""
    k = 0
    for j in range(nc):
        off = cands[j]
        acc[U(off)] -= bound
        if acc[U(off)] > thr:
            cands[U(k)] = off
            k += 1
        else:
            cbits[U(off >> 5)] &= ~(np.int64(1) << (off & 31))
    return k
