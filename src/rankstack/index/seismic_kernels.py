"""numba kernels of the Seismic approximate index (rankstack.index.seismic): building blocks and summaries,
and batched top-k search with block skipping and exact rescoring from the forward index.

Layout (all one-dimensional; "comps" are vocabulary ids, ascending within a row):

* forward index: ``fwd_offsets`` int64 [N+1], ``fwd_comps``, ``fwd_values`` float32 — documents as sparse rows;
* blocks: ``term_blocks`` int64 [V+1] (each term's range of blocks), ``block_offsets`` int64 [B+1] into
  ``block_docs`` int32 (docnos, ascending within a block);
* summaries: ``summary_offsets`` int64 [B+1], ``summary_comps``, ``summary_values`` float32 — per block the
  component-wise max of its documents, cut to the heaviest components holding `summary_energy` of its mass.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from rankstack.index.kernels import _better, _sift_down, _topk_results


# ---------------------------------------------------------------------------------------------
# building


@njit(cache=True, parallel=True)
def prune_postings(col_ptr, col_docs, col_vals, n_postings, out_ptr, out_docs):
    """Keep the `n_postings` heaviest postings of each term (ties: lower docno), in docno order.
    `out_ptr` [V+1] must hold the kept counts' prefix sums."""
    for t in prange(col_ptr.shape[0] - 1):
        lo, hi, o = col_ptr[t], col_ptr[t + 1], out_ptr[t]
        if hi - lo <= n_postings:
            out_docs[o:o + hi - lo] = col_docs[lo:hi]
        else:
            order = np.argsort(-col_vals[lo:hi], kind="mergesort")[:n_postings]
            out_docs[o:o + n_postings] = np.sort(col_docs[lo:hi][order])


@njit(cache=True, parallel=True)
def cluster_postings(list_ptr, list_docs, fwd_offsets, fwd_comps, fwd_values, dim, cent_ptr, cluster_sizes, seed,
                     n_slots):
    """Split each term's (pruned) posting list into blocks: pick ceil(fraction * length) random documents
    as centroids, give each document to the centroid of largest dot product. Reorders `list_docs` in
    place so that each cluster is contiguous (docno order within it) and writes cluster sizes into
    `cluster_sizes[cent_ptr[t]:cent_ptr[t+1]]` (empty clusters: 0). Thread slot i of `n_slots` takes
    terms i, i + n_slots, ... with one scratch array of `dim` entries."""
    n_terms = list_ptr.shape[0] - 1
    for slot in prange(n_slots):
        slot_of = np.full(dim, -1, np.int32)
        for t in range(slot, n_terms, n_slots):
            lo, hi = list_ptr[t], list_ptr[t + 1]
            n = hi - lo
            c0, nc = cent_ptr[t], cent_ptr[t + 1] - cent_ptr[t]
            if n == 0:
                continue
            if nc == 1:
                cluster_sizes[c0] = n
                continue
            docs = list_docs[lo:hi].copy()
            np.random.seed(seed + t)
            perm = np.arange(n)
            for i in range(nc):  # partial Fisher-Yates: the first nc positions are the centroids
                j = np.random.randint(i, n)
                perm[i], perm[j] = perm[j], perm[i]
            # centroid components, inverted: component -> (centroid, weight) entries
            count = 0
            for c in range(nc):
                d = docs[perm[c]]
                count += fwd_offsets[d + 1] - fwd_offsets[d]
            touched = np.empty(count, np.int64)
            n_touched = 0
            counts = np.zeros(count + 1, np.int64)
            for c in range(nc):
                d = docs[perm[c]]
                for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
                    j = fwd_comps[p]
                    if slot_of[j] < 0:
                        slot_of[j] = n_touched
                        touched[n_touched] = j
                        n_touched += 1
                    counts[slot_of[j] + 1] += 1
            starts = np.cumsum(counts[:n_touched + 1])
            fill = starts[:n_touched].copy()
            ent_c = np.empty(count, np.int32)
            ent_w = np.empty(count, np.float32)
            for c in range(nc):
                d = docs[perm[c]]
                for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
                    s = slot_of[fwd_comps[p]]
                    ent_c[fill[s]] = c
                    ent_w[fill[s]] = fwd_values[p]
                    fill[s] += 1
            scores = np.zeros(nc, np.float32)
            assign = np.empty(n, np.int64)
            for i in range(n):
                d = docs[i]
                scores[:] = 0.0
                for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
                    s = slot_of[fwd_comps[p]]
                    if s >= 0:
                        w = fwd_values[p]
                        for e in range(starts[s], starts[s + 1]):
                            scores[ent_c[e]] += w * ent_w[e]
                best = 0
                for c in range(1, nc):
                    if scores[c] > scores[best]:
                        best = c
                assign[i] = best
            for i in range(n_touched):
                slot_of[touched[i]] = -1
            sizes = np.zeros(nc + 1, np.int64)
            for i in range(n):
                sizes[assign[i] + 1] += 1
            cluster_sizes[c0:c0 + nc] = sizes[1:]
            pos = np.cumsum(sizes)[:nc]
            for i in range(n):  # stable counting sort: docno order within a cluster
                list_docs[lo + pos[assign[i]]] = docs[i]
                pos[assign[i]] += 1


@njit(cache=True, parallel=True)
def summarize_blocks(block_offsets, block_docs, fwd_offsets, fwd_comps, fwd_values, dim, energy,
                     summary_offsets, summary_comps, summary_values, count_only, n_slots):
    """Per block: the component-wise max of its documents, cut to the heaviest components whose sum
    reaches `energy` of the total. With `count_only`, write the kept counts into summary_offsets[1:];
    else fill summary_comps/values at the given offsets (ascending components)."""
    n_blocks = block_offsets.shape[0] - 1
    for slot in prange(n_slots):
        acc = np.zeros(dim, np.float32)
        touched = np.empty(dim, np.int64)
        for b in range(slot, n_blocks, n_slots):
            n_touched = 0
            for p in range(block_offsets[b], block_offsets[b + 1]):
                d = block_docs[p]
                for q in range(fwd_offsets[d], fwd_offsets[d + 1]):
                    j = fwd_comps[q]
                    if acc[j] == 0.0:
                        touched[n_touched] = j
                        n_touched += 1
                    acc[j] = max(acc[j], fwd_values[q])
            comps = touched[:n_touched]
            vals = np.empty(n_touched, np.float32)
            total = 0.0
            for i in range(n_touched):
                vals[i] = acc[comps[i]]
                total += vals[i]
                acc[comps[i]] = 0.0
            order = np.argsort(-vals, kind="mergesort")
            keep, mass = 0, 0.0
            while keep < n_touched and (keep == 0 or mass < energy * total):
                mass += vals[order[keep]]
                keep += 1
            if count_only:
                summary_offsets[b + 1] = keep
            else:
                kept = order[:keep]
                by_comp = kept[np.argsort(comps[kept])]
                o = summary_offsets[b]
                for i in range(keep):
                    summary_comps[o + i] = comps[by_comp[i]]
                    summary_values[o + i] = vals[by_comp[i]]


# ---------------------------------------------------------------------------------------------
# search


@njit(cache=True, nogil=True, inline="always")
def _offer_heap(hs, hd, size, k, s, d):
    """Offer (s, d) to a k-heap whose root is its worst entry; return the new size."""
    if size < k:
        hs[size], hd[size] = s, d
        size += 1
        if size == k:
            for i in range(k // 2 - 1, -1, -1):
                _sift_down(hs, hd, i, k)
        return size
    if _better(s, d, hs[0], hd[0]):
        hs[0], hd[0] = s, d
        _sift_down(hs, hd, 0, k)
    return size


@njit(cache=True, nogil=True)
def _search_one(qc, qv, query_cut, heap_factor, k, term_blocks, block_offsets, block_docs, summary_offsets,
                summary_comps, summary_values, fwd_offsets, fwd_comps, fwd_values, live, dense, stamp, mark,
                out_docs, out_scores):
    for i in range(qc.shape[0]):
        dense[qc[i]] += qv[i]
    order = np.argsort(-qv, kind="mergesort")[:query_cut]
    hs = np.zeros(k, np.float32)
    hd = np.zeros(k, np.int32)
    size = 0
    has_live = live.shape[0] > 0
    for oi in range(order.shape[0]):
        t = qc[order[oi]]
        b0, b1 = term_blocks[t], term_blocks[t + 1]
        if b1 == b0:
            continue
        dots = np.empty(b1 - b0, np.float32)
        for b in range(b0, b1):
            s = np.float32(0.0)
            for p in range(summary_offsets[b], summary_offsets[b + 1]):
                s += dense[summary_comps[p]] * summary_values[p]
            dots[b - b0] = s
        for bi in np.argsort(-dots, kind="mergesort"):
            if size == k and dots[bi] < heap_factor * hs[0]:
                break  # blocks come best summary first: the rest score lower still
            b = b0 + bi
            for p in range(block_offsets[b], block_offsets[b + 1]):
                d = block_docs[p]
                if stamp[d] == mark:
                    continue
                stamp[d] = mark
                if has_live and not live[d]:
                    continue
                s = np.float32(0.0)
                for q in range(fwd_offsets[d], fwd_offsets[d + 1]):
                    s += dense[fwd_comps[q]] * fwd_values[q]
                if s > 0:
                    size = _offer_heap(hs, hd, size, k, s, d)
    for i in range(qc.shape[0]):
        dense[qc[i]] = 0.0
    kn = np.zeros(1, np.int64)
    kn[0] = size
    docs, scores = _topk_results(hs, hd, kn, k)
    out_docs[:size] = docs
    out_scores[:size] = scores
    return size


@njit(cache=True, parallel=True)
def search_batch(q_offsets, q_comps, q_values, query_cut, heap_factor, k, n_docs, dim, term_blocks, block_offsets,
                 block_docs, summary_offsets, summary_comps, summary_values, fwd_offsets, fwd_comps, fwd_values,
                 live, out_docs, out_scores, counts, n_slots):
    """Top-k of each query (rows of the CSR q_offsets/q_comps/q_values) into out_docs/out_scores[q, :counts[q]]."""
    n_queries = q_offsets.shape[0] - 1
    for slot in prange(n_slots):
        dense = np.zeros(dim, np.float32)
        stamp = np.zeros(n_docs, np.int32)
        mark = 0
        for qi in range(slot, n_queries, n_slots):
            mark += 1
            lo, hi = q_offsets[qi], q_offsets[qi + 1]
            counts[qi] = _search_one(q_comps[lo:hi], q_values[lo:hi], query_cut, heap_factor, k, term_blocks,
                                     block_offsets, block_docs, summary_offsets, summary_comps, summary_values,
                                     fwd_offsets, fwd_comps, fwd_values, live, dense, stamp, mark,
                                     out_docs[qi], out_scores[qi])
