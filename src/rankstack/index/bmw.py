"""Block-Max WAND (Ding & Suel 2011): `bmw`. Arguments as in `rankstack.index.kernels`; safe when theta == 1."""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.index import topk
from rankstack.index.cursors import (BLK, CD, END, STOP, advance, cursor_bound, floor_threshold, next_geq,
                                     open_cursors, shallow, value)
from rankstack.index.scoring import BM25, contrib, doc_norm, sum_slack


@njit(cache=True, nogil=True)
def bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta):
    """Block-Max WAND (Ding & Suel 2011): pivot by term bounds, then check block bounds."""
    n = term_ids.shape[0]
    C, ub, w64, bufd, bufv, bufc, bub = open_cursors(seg, mode, term_ids, weights, na, nb)
    ordered = np.argsort(C[:, CD], kind="mergesort")  # cursors by current docno
    bs, bd, kn, kth = topk.new(k)
    kth[0] = floor_threshold(seg, mode, term_ids, weights, norm, live, k)
    _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered,
             np.zeros(n, np.float32), bs, bd, kn, kth, k)
    return topk.results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _bmw_run(seg, mode, weights, norm, na, nb, live, theta, C, ub, w64, bufd, bufv, bub, ordered, contribs,
             bs, bd, kn, kth, k):
    block_last, block_offsets, dbits, vbits, bmax, bminlen, data = (
        seg.block_last, seg.block_offsets, seg.block_doc_bits, seg.block_val_bits, seg.block_max, seg.block_min_len,
        seg.data)
    n = weights.shape[0]
    slack = sum_slack(n)
    has_live = live.shape[0] > 0
    thr = kth[0] * theta / slack  # the floor below the k-th best, or 0
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
            shallow(block_last, C, i, pivot)
            bsum += cursor_bound(bmax, bminlen, mode, C, bub, w64, i, na, nb)
        if bsum > thr:
            if C[ordered[0], CD] == pivot:  # all of ordered[:p+1] sit on the pivot: score it
                if not has_live or live[pivot]:
                    nd = doc_norm(norm, pivot) if mode == BM25 else np.float32(0.0)
                    for m in range(p + 1):
                        i = ordered[m]
                        contribs[i] = contrib(mode, weights[i], value(block_offsets, dbits, vbits, data, C, bufv, i), nd)
                    s = np.float32(0.0)
                    for i in range(n):  # the exact score: float32 sum in query-term order
                        s += contribs[i]
                        contribs[i] = 0
                    if s > kth[0]:
                        topk.offer(bs, bd, kn, kth, k, s, pivot)
                        thr = kth[0] * theta / slack
                for m in range(p + 1):
                    advance(block_last, block_offsets, dbits, data, C, bufd, ordered[m])
                lo = 0
            else:  # move the last list before the pivot up to it
                lo = p
                while C[ordered[lo], CD] == pivot:
                    lo -= 1
                next_geq(block_last, block_offsets, dbits, data, C, bufd, ordered[lo], pivot)
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
            next_geq(block_last, block_offsets, dbits, data, C, bufd, ordered[lo], nxt)
            p = lo
        for m in range(p, lo - 1, -1):  # cursors ordered[lo:p+1] moved: bubble them into place
            while m + 1 < n and C[ordered[m + 1], CD] < C[ordered[m], CD]:
                ordered[m], ordered[m + 1] = ordered[m + 1], ordered[m]
                m += 1
