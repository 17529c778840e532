"""Block-Max Pruning (Mallia, Suel, Tonellotto, SIGIR 2024) over a segment's postings: `range_bounds`, `search_csr`.

Doc numbers are cut into ranges of RANGE consecutive documents. For every term, `range_bounds` lists the ranges
holding its postings, each with an upper bound of the term's contribution there (per unit of query weight,
quantised upwards to 8 bits of the term's largest). A query adds its terms' bounds over all ranges, then evaluates
ranges exactly (their postings decoded, scored in query-term order as the exhaustive kernel does): first the few
with the highest bounds, for a good k-th score soon, then the others whose bound can still beat it, in doc order,
so that each term's postings are read forwards and each block is decoded once. The same hits and scores as the
exhaustive kernel at theta = 1; theta > 1 skips ranges whose bound is below theta times the k-th score (faster, may
miss documents).

The bounds come from one pass over the segment's postings when first asked (`SegmentSearcher` keeps them in
memory; BM25's depend on the norms, so on k1, b and avgdl), not from the index files. They pay where documents
of a range share terms: reordered indexes (`rankstack.index.reorder`) and learned-sparse ones.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.index import topk
from rankstack.index.cursors import lower_bound
from rankstack.index.kernels import check_queries
from rankstack.index.postings import BLOCK, decode_block_docs, decode_block_values
from rankstack.index.scoring import BM25, IMPACT, UB_SLACK, contrib, doc_norm, sum_slack

RANGE = 64  # documents per range (the paper's best sizes on MS MARCO are 32-64)
LEVELS = 255.0  # quantisation steps of a range's bound, relative to the term's largest
SEEDS, SEED_DOCS = 8, 8  # ranges evaluated by bound first: SEEDS + k / SEED_DOCS


@njit(cache=True, nogil=True)
def range_bounds(seg, mode, norm, n_docs):
    """(offsets int64 [V+1], range ids int32, 8-bit bounds uint8, scale float64 [V]): term t's ranges are
    ids[offsets[t]:offsets[t+1]] (ascending), a posting's contribution per unit weight in range ids[j] is at most
    scale[t] * bounds[j] / LEVELS."""
    term_blocks, term_last = seg.term_blocks, seg.term_last_count
    n_terms = term_blocks.shape[0] - 1
    n_ranges = (n_docs + RANGE - 1) // RANGE
    offsets = np.zeros(n_terms + 1, np.int64)
    postings = 0  # at least the number of entries
    for t in range(n_terms):
        blocks = np.int64(term_blocks[t + 1]) - np.int64(term_blocks[t])
        if blocks > 0:
            postings += (blocks - 1) * BLOCK + np.int64(term_last[t])
    ids = np.empty(postings, np.int32)
    bounds = np.empty(ids.shape[0], np.uint8)
    scale = np.zeros(n_terms, np.float64)
    largest = np.empty(n_ranges, np.float64)  # the current term's largest contribution per range
    bd = np.empty((1, BLOCK), np.int32)
    bv = np.empty((1, BLOCK), np.uint32)
    e = 0
    for t in range(n_terms):
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        start, current, top = e, -1, 0.0
        for b in range(first, end):
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            decode_block_docs(seg.block_offsets, seg.block_doc_bits, seg.block_last, seg.data, b, b == first, n,
                              bd, 0)
            decode_block_values(seg.block_offsets, seg.block_doc_bits, seg.block_val_bits, seg.data, b, b == first,
                                n, bv, 0)
            for j in range(n):
                d = bd[0, j]
                v = np.float64(np.float32(bv[0, j]))
                u = v / (v + np.float64(doc_norm(norm, d))) if mode == BM25 else v
                r = d // RANGE
                if r != current:
                    current = r
                    ids[e] = r
                    largest[e - start] = u
                    e += 1
                elif u > largest[e - start - 1]:
                    largest[e - start - 1] = u
                top = max(top, u)
        scale[t] = top
        for j in range(start, e):
            q = np.ceil(LEVELS * largest[j - start] / top) if top > 0 else 0.0
            bounds[j] = np.uint8(min(LEVELS, q))
        offsets[t + 1] = e
    return offsets, ids[:e].copy(), bounds[:e].copy(), scale


@njit(cache=True, nogil=True)
def search_csr(seg, mode, n_docs, indptr, terms, weights, norm, live, k, theta, offsets, ids, bounds, scale,
               out_docs, out_scores, out_counts):
    """Each query of a CSR batch (as `rankstack.index.kernels.search_csr`: term id -1 = absent from the segment)
    into its row of the outputs; `check_queries`' answer (nothing searched unless 0)."""
    problem = check_queries(indptr, terms, weights, seg.term_blocks.shape[0] - 1)
    if problem:
        return problem
    n_ranges = (n_docs + RANGE - 1) // RANGE
    width = indptr.shape[0] - 1
    longest = 0
    for q in range(width):
        longest = max(longest, indptr[q + 1] - indptr[q])
    ub = np.empty(n_ranges, np.float64)
    keys = np.empty(max(1, min(n_ranges, SEEDS + k // SEED_DOCS)), np.float64)
    seeds = np.empty(keys.shape[0], np.int32)
    acc = np.zeros(RANGE, np.float32)
    touched = np.zeros(RANGE, np.bool_)
    bd = np.empty((max(1, longest), BLOCK), np.int32)
    bv = np.empty((max(1, longest), BLOCK), np.uint32)
    decoded = np.empty(max(1, longest), np.int64)
    entry = np.empty(max(1, longest), np.int64)
    block = np.empty(max(1, longest), np.int64)
    pos = np.empty(max(1, longest), np.int64)
    hs = np.empty(k, np.float32)
    hd = np.empty(k, np.int32)
    for q in range(width):
        a, e = indptr[q], indptr[q + 1]
        size = _query(seg, mode, n_docs, terms[a:e], weights[a:e], norm, live, k, theta, offsets, ids, bounds,
                      scale, ub, keys, seeds, acc, touched, bd, bv, decoded, entry, block, pos, hs, hd)
        topk.heap_sort(hs, hd, size)
        out_counts[q] = size
        out_docs[q, :size] = hd[:size]
        out_scores[q, :size] = hs[:size]
    return 0


@njit(cache=True, nogil=True, _nrt=False)
def _query(seg, mode, n_docs, terms, weights, norm, live, k, theta, offsets, ids, bounds, scale, ub, keys, seeds, acc,
           touched, bd, bv, decoded, entry, block, pos, hs, hd):
    """One query's top k into the k-heap (hs, hd); its size. The other arrays are work space."""
    n_ranges = ub.shape[0]
    for r in range(n_ranges):
        ub[r] = 0.0
    for i in range(terms.shape[0]):
        t = terms[i]
        if t < 0:
            continue
        unit = np.float64(weights[i]) * scale[t] / LEVELS * (1.0 + UB_SLACK)
        for j in range(offsets[t], offsets[t + 1]):
            ub[ids[j]] += unit * np.float64(bounds[j])
    n = 0  # the ranges with the highest bounds: a min-heap of at most keys.shape[0]
    for r in range(n_ranges):
        if ub[r] > 0.0 and (n < keys.shape[0] or ub[r] > keys[0]):
            if n < keys.shape[0]:
                keys[n], seeds[n] = ub[r], r
                n += 1
                _sift_up(keys, seeds, n - 1)
            else:
                keys[0], seeds[0] = ub[r], r
                _sift_down(keys, seeds, 0, n)
    for last in range(n - 1, 0, -1):  # highest bound first
        keys[0], keys[last] = keys[last], keys[0]
        seeds[0], seeds[last] = seeds[last], seeds[0]
        _sift_down(keys, seeds, 0, last)
    for i in range(terms.shape[0]):
        decoded[i] = -1
    slack = sum_slack(terms.shape[0])
    size = 0
    for s in range(n):  # a threshold soon; every other range's bound is at most the last seed's
        if size == k and keys[s] * slack < theta * hs[0]:  # no range left can beat the k-th score
            return size
        size = _evaluate(seg, mode, n_docs, terms, weights, norm, live, k, offsets, ids, seeds[s], acc, touched, bd,
                         bv, decoded, entry, block, pos, False, hs, hd, size)
        ub[seeds[s]] = 0.0
    for i in range(terms.shape[0]):  # then the others in doc order, each term's postings read forwards
        decoded[i] = -1
        if terms[i] >= 0:
            entry[i], block[i] = offsets[terms[i]], seg.term_blocks[terms[i]]
    for r in range(n_ranges):
        if ub[r] > 0.0 and (size < k or ub[r] * slack >= theta * hs[0]):
            size = _evaluate(seg, mode, n_docs, terms, weights, norm, live, k, offsets, ids, r, acc, touched, bd, bv,
                             decoded, entry, block, pos, True, hs, hd, size)
    return size


@njit(cache=True, nogil=True, _nrt=False)
def _sift_up(keys, values, i):
    """Restore the min-heap of (keys, values) above position i."""
    key, value = keys[i], values[i]
    while i > 0 and keys[(i - 1) >> 1] > key:
        keys[i], values[i] = keys[(i - 1) >> 1], values[(i - 1) >> 1]
        i = (i - 1) >> 1
    keys[i], values[i] = key, value


@njit(cache=True, nogil=True, _nrt=False)
def _sift_down(keys, values, i, n):
    """Restore the min-heap of (keys, values) below position i."""
    key, value = keys[i], values[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and keys[c + 1] < keys[c]:
            c += 1
        if keys[c] >= key:
            break
        keys[i], values[i] = keys[c], values[c]
        i = c
    keys[i], values[i] = key, value


@njit(cache=True, nogil=True, _nrt=False)
def _gallop(ascending, lo, hi, x):
    """First position in ascending[lo:hi] whose value is >= x (hi if none), searched from lo outwards: cheap when
    it is near lo, as when reading forwards."""
    if lo >= hi or ascending[lo] >= x:
        return lo
    step = 1  # ascending[lo] < x from here on
    while lo + step < hi and ascending[lo + step] < x:
        lo += step
        step <<= 1
    return lower_bound(ascending, lo + 1, min(lo + step + 1, hi), x)


@njit(cache=True, nogil=True, _nrt=False)
def _row_gallop(rows, i, lo, n, x):
    """`_gallop` over rows[i, lo:n]."""
    if lo >= n or rows[i, lo] >= x:
        return lo
    step = 1  # rows[i, lo] < x from here on
    while lo + step < n and rows[i, lo + step] < x:
        lo += step
        step <<= 1
    lo, hi = lo + 1, min(lo + step + 1, n)
    while lo < hi:
        mid = (lo + hi) >> 1
        if rows[i, mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, _nrt=False)
def _evaluate(seg, mode, n_docs, terms, weights, norm, live, k, offsets, ids, r, acc, touched, bd, bv, decoded, entry,
              block, pos, forwards, hs, hd, size):
    """Score range r's documents exactly and offer them to the k-heap; the heap's new size. Reading `forwards`
    (ranges in ascending order, after `_query` reset decoded, entry and block), term i's range entry, block and
    position in its decoded block move on from entry[i], block[i] and pos[i]; otherwise each is searched anew."""
    term_blocks, term_last, block_last = seg.term_blocks, seg.term_last_count, seg.block_last
    lo = np.int64(r) * RANGE
    hi = min(lo + RANGE, n_docs)
    for i in range(terms.shape[0]):
        t = terms[i]
        if t < 0:
            continue
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        if forwards:
            j = _gallop(ids, entry[i], offsets[t + 1], r)
            entry[i] = j
        else:
            j = lower_bound(ids, offsets[t], offsets[t + 1], r)
        if j == offsets[t + 1] or ids[j] != r:  # no posting of t in this range
            continue
        w = weights[i]
        if forwards:
            b = _gallop(block_last, block[i], end, lo)  # the first block that reaches the range
            block[i] = b
        else:
            b = lower_bound(block_last, first, end, lo)
        while b < end:
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            if decoded[i] != b:
                decode_block_docs(seg.block_offsets, seg.block_doc_bits, block_last, seg.data, b, b == first, n, bd, i)
                decode_block_values(seg.block_offsets, seg.block_doc_bits, seg.block_val_bits, seg.data, b,
                                    b == first, n, bv, i)
                decoded[i] = b
                pos[i] = 0
            p = _row_gallop(bd, i, pos[i] if forwards else 0, n, lo)
            while p < n and bd[i, p] < hi:
                d = bd[i, p]
                if mode == BM25:
                    acc[d - lo] += contrib(BM25, w, bv[i, p], doc_norm(norm, d))
                else:
                    acc[d - lo] += contrib(IMPACT, w, bv[i, p], np.float32(0.0))
                touched[d - lo] = True
                p += 1
            if forwards:
                pos[i] = p
            if p < n or block_last[b] >= hi - 1:  # the range ends in this block
                break
            b += 1
    has_live = live.shape[0] > 0
    for off in range(hi - lo):
        if touched[off]:
            s = acc[off]
            acc[off] = 0.0
            touched[off] = False
            d = lo + off
            if s > 0.0 and (not has_live or live[d]):
                size = topk.heap_offer(hs, hd, size, k, s, np.int32(d))
    return size
