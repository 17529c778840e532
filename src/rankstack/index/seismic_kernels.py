"""numba kernels of the Seismic approximate index (rankstack.index.seismic): building blocks and summaries,
and batched top-k search with block skipping and exact rescoring from the forward index.

Layout (all one-dimensional; "comps" are vocabulary ids, ascending within a row):

* forward index: ``fwd_offsets`` int64 [N+1] into either ``fwd_packed`` uint32 (component | weight code << 16)
  or ``fwd_comps`` and ``fwd_values`` (uint16 codes or float32); a weight is its code times ``value_scale``;
* blocks: ``term_blocks`` int64 [V+1] (each term's range of blocks), ``block_offsets`` int64 [B+1] into
  ``block_docs`` int32 (docnos, ascending within a block);
* summaries (per block the component-wise max of its documents, cut to the heaviest components holding
  `summary_energy` of its mass): ``summary_scales`` float32 [B]; per term t, its distinct summary components
  ``summary_comps[term_comps[t]:term_comps[t+1]]`` (ascending), and for the i-th of them the entries
  ``summary_comp_offsets[i]:summary_comp_offsets[i+1]`` of ``summary_blocks`` (block number within the term,
  uint16 or int32) and ``summary_codes`` uint8: value <= code * summary_scales[block].

Search visits each chosen term's blocks in list order (as pyseismic-lsr does). Rows are scattered over the
forward index and their loads dominate the time, so all the rows of a block are requested at once (independent
loads overlap) before any is scored. The search kernel is compiled without reference counting (``_nrt=False``):
numba's counting of the arrays it passes around, per scored document, was a fifth of the time; so it must not
allocate.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from rankstack.index import topk
from rankstack.index.cursors import lower_bound


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


@njit(cache=True, nogil=True, inline="always")
def _max_sift_down(vals, heap, i, n):
    """Max-heap of positions `heap[:n]` on vals[position]."""
    x = heap[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and vals[heap[c + 1]] > vals[heap[c]]:
            c += 1
        if vals[heap[c]] <= vals[x]:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = x


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
        vals = np.empty(dim, np.float32)
        heap = np.empty(dim, np.int64)
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
            total = 0.0
            for i in range(n_touched):
                vals[i] = acc[touched[i]]
                total += vals[i]
                acc[touched[i]] = 0.0
                heap[i] = i
            # the heaviest first, popped from a max-heap until they hold `energy` of the mass (a full sort
            # of every block is what made building slow)
            for i in range(n_touched // 2 - 1, -1, -1):
                _max_sift_down(vals, heap, i, n_touched)
            keep, mass, n = 0, 0.0, n_touched
            while n > 0 and (keep == 0 or mass < energy * total):
                top = heap[0]
                n -= 1
                heap[0] = heap[n]
                _max_sift_down(vals, heap, 0, n)
                heap[n] = top  # the kept positions collect at the end, heaviest last
                mass += vals[top]
                keep += 1
            if count_only:
                summary_offsets[b + 1] = keep
            else:
                kept = touched[heap[n_touched - keep:n_touched]]
                order = np.argsort(kept)
                o = summary_offsets[b]
                for i in range(keep):
                    summary_comps[o + i] = kept[order[i]]
                    summary_values[o + i] = vals[heap[n_touched - keep + order[i]]]


@njit(cache=True, parallel=True)
def quantize_summaries(summary_offsets, summary_values, scales, codes):
    """Per block: scale = max / 255 (nudged up until 255 * scale >= max) and codes = ceil(value / scale), so
    that code * scale >= value: a quantised summary still bounds every score of its block."""
    for b in prange(summary_offsets.shape[0] - 1):
        lo, hi = summary_offsets[b], summary_offsets[b + 1]
        top = np.float32(0.0)
        for p in range(lo, hi):
            top = max(top, summary_values[p])
        s = np.float32(top / np.float32(255.0)) if top > 0 else np.float32(1.0)
        if s == 0:  # top / 255 underflows: one step of top
            s = top
        while np.float32(s * np.float32(255.0)) < top:
            s = np.float32(s * np.float32(1.0000001))
        scales[b] = s
        for p in range(lo, hi):
            v = summary_values[p]
            c = min(255, int(np.ceil(v / s)))
            while c < 255 and np.float32(np.float32(c) * s) < v:
                c += 1
            codes[p] = c


@njit(cache=True, parallel=True)
def invert_summaries(term_blocks, summary_offsets, summary_comps, codes, term_comps, sc_comps, sc_ptr, sc_blocks,
                     sc_codes, count_only):
    """Regroup each term's block summaries by component: for its i-th distinct component (ascending)
    sc_comps[term_comps[t] + i], entries sc_ptr[..]:sc_ptr[.. + 1] of sc_blocks (block number within the term's
    list, ascending) and sc_codes. With `count_only`, write the distinct counts into term_comps[1:]. A term's
    entries keep the range they had in summary_offsets."""
    n_terms = term_blocks.shape[0] - 1
    for t in prange(n_terms):
        b0, b1 = term_blocks[t], term_blocks[t + 1]
        lo, hi = summary_offsets[b0], summary_offsets[b1]
        if hi == lo:
            if count_only:
                term_comps[t + 1] = 0
            continue
        comps = summary_comps[lo:hi]
        order = np.argsort(comps, kind="mergesort")  # stable: block order within a component
        if count_only:
            distinct = 1
            for i in range(1, hi - lo):
                if comps[order[i]] != comps[order[i - 1]]:
                    distinct += 1
            term_comps[t + 1] = distinct
            continue
        block_of = np.empty(hi - lo, np.int64)
        for b in range(b0, b1):
            block_of[summary_offsets[b] - lo:summary_offsets[b + 1] - lo] = b - b0
        o = term_comps[t] - 1
        for i in range(hi - lo):
            e = order[i]
            if i == 0 or comps[e] != comps[order[i - 1]]:
                o += 1
                sc_comps[o] = comps[e]
                sc_ptr[o] = lo + i
            sc_blocks[lo + i] = block_of[e]
            sc_codes[lo + i] = codes[lo + e]
    sc_ptr[sc_ptr.shape[0] - 1] = summary_offsets[summary_offsets.shape[0] - 1]


# ---------------------------------------------------------------------------------------------
# search


@intrinsic
def _prefetch(typingctx, array, index):
    """Hint the CPU to load array[index] into cache (LLVM's prefetch: read, high locality)."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row(fwd_offsets, fwd_packed, fwd_comps, fwd_values, d):
    """Start loading document d's row (its first three cache lines)."""
    lo = fwd_offsets[d]
    if fwd_packed.shape[0] > 0:
        last = fwd_packed.shape[0] - 1
        _prefetch(fwd_packed, lo)
        _prefetch(fwd_packed, min(lo + 16, last))
        _prefetch(fwd_packed, min(lo + 32, last))
    else:
        _prefetch(fwd_comps, lo)
        _prefetch(fwd_values, lo)


@njit(cache=True, nogil=True, inline="always")
def _row_dot(fwd_offsets, fwd_packed, fwd_comps, fwd_values, dense, d):
    """Dot product of document d with the dense query."""
    lo, hi = fwd_offsets[d], fwd_offsets[d + 1]
    # four partial sums: one would wait for each addition before the next (the loop's bottleneck)
    s0 = s1 = s2 = s3 = np.float32(0.0)
    if fwd_packed.shape[0] > 0:
        row = fwd_packed[lo:hi]  # a view: its indices need no negative-index checks
        n4 = row.shape[0] & ~3
        for i in range(0, n4, 4):
            s0 += dense[row[i] & 0xFFFF] * np.float32(row[i] >> 16)
            s1 += dense[row[i + 1] & 0xFFFF] * np.float32(row[i + 1] >> 16)
            s2 += dense[row[i + 2] & 0xFFFF] * np.float32(row[i + 2] >> 16)
            s3 += dense[row[i + 3] & 0xFFFF] * np.float32(row[i + 3] >> 16)
        for i in range(n4, row.shape[0]):
            s0 += dense[row[i] & 0xFFFF] * np.float32(row[i] >> 16)
    else:
        comps, values = fwd_comps[lo:hi], fwd_values[lo:hi]
        n4 = comps.shape[0] & ~3
        for i in range(0, n4, 4):
            s0 += dense[comps[i]] * np.float32(values[i])
            s1 += dense[comps[i + 1]] * np.float32(values[i + 1])
            s2 += dense[comps[i + 2]] * np.float32(values[i + 2])
            s3 += dense[comps[i + 3]] * np.float32(values[i + 3])
        for i in range(n4, comps.shape[0]):
            s0 += dense[comps[i]] * np.float32(values[i])
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True, _nrt=False)
def _search_one(qc, qv, query_cut, heap_factor, value_scale, k, term_blocks, block_offsets, block_docs,
                summary_scales, term_comps, sc_comps, sc_ptr, sc_blocks, sc_codes, fwd_offsets, fwd_packed, fwd_comps,
                fwd_values, live, dense, stamp, mark, acc, terms, hs, hd, out_docs, out_scores):
    nq = qc.shape[0]
    for i in range(nq):
        dense[qc[i]] = qv[i] * value_scale  # stored document values are multiples of value_scale
    # the query_cut heaviest terms, heaviest first (ties: lower position), by insertion
    n_terms = 0
    for i in range(nq):
        j = n_terms
        if j == query_cut:
            if qv[i] <= qv[terms[j - 1]]:
                continue
            j -= 1
        else:
            n_terms += 1
        while j > 0 and qv[terms[j - 1]] < qv[i]:
            terms[j] = terms[j - 1]
            j -= 1
        terms[j] = i
    size = 0
    has_live = live.shape[0] > 0
    for oi in range(n_terms):
        t = qc[terms[oi]]
        b0, b1 = term_blocks[t], term_blocks[t + 1]
        nb = b1 - b0
        if nb == 0:
            continue
        # summary scores of the term's blocks: the query's components looked up in its inverted summaries
        acc[:nb] = 0.0
        c0, c1 = term_comps[t], term_comps[t + 1]
        for i in range(nq):
            c = qc[i]
            lo = lower_bound(sc_comps, c0, c1, c)
            c0 = lo  # query components ascend: the next one lies further on
            if lo < c1 and sc_comps[lo] == c:
                w = qv[i]
                for e in range(sc_ptr[lo], sc_ptr[lo + 1]):
                    acc[sc_blocks[e]] += w * np.float32(sc_codes[e])
        # blocks in list order; one whose summary scores below heap_factor x (k-th best score) is skipped
        for bi in range(nb):
            if size == k and acc[bi] * summary_scales[b0 + bi] < heap_factor * hs[0]:
                continue
            p0, p1 = block_offsets[b0 + bi], block_offsets[b0 + bi + 1]
            for p in range(p0, p1):  # the block's rows requested all at once, then scored
                d = block_docs[p]
                _prefetch(stamp, d)
                _prefetch_row(fwd_offsets, fwd_packed, fwd_comps, fwd_values, d)
            for p in range(p0, p1):
                d = block_docs[p]
                if stamp[d] == mark:
                    continue
                stamp[d] = mark
                if has_live and not live[d]:
                    continue
                s = _row_dot(fwd_offsets, fwd_packed, fwd_comps, fwd_values, dense, d)
                if s > 0:
                    size = topk.heap_offer(hs, hd, size, k, s, d)
    for i in range(nq):
        dense[qc[i]] = 0.0
    topk.heap_sort(hs, hd, size)
    for i in range(size):  # a loop: a slice copy may allocate, which _nrt=False forbids
        out_docs[i] = hd[i]
        out_scores[i] = hs[i]
    return size


@njit(cache=True, parallel=True)
def search_batch(q_offsets, q_comps, q_values, query_cut, heap_factor, value_scale, k, n_docs, dim, max_blocks,
                 term_blocks, block_offsets, block_docs, summary_scales, term_comps, sc_comps, sc_ptr, sc_blocks,
                 sc_codes, fwd_offsets, fwd_packed, fwd_comps, fwd_values, live, out_docs, out_scores, counts,
                 n_slots):
    """Top-k of each query (rows of the CSR q_offsets/q_comps/q_values, components ascending) into
    out_docs/out_scores[q, :counts[q]]. `max_blocks`: the most blocks of one term. The forward index is
    either `fwd_packed` or (when that is empty) `fwd_comps` and `fwd_values`; values times `value_scale`."""
    n_queries = q_offsets.shape[0] - 1
    max_len = 1
    for qi in range(n_queries):
        max_len = max(max_len, q_offsets[qi + 1] - q_offsets[qi])
    for slot in prange(n_slots):
        dense = np.zeros(dim, np.float32)
        stamp = np.zeros(n_docs, np.int32)
        acc = np.zeros(max_blocks, np.float32)
        terms = np.zeros(max_len, np.int64)
        hs = np.zeros(k, np.float32)
        hd = np.zeros(k, np.int32)
        mark = 0
        for qi in range(slot, n_queries, n_slots):
            mark += 1
            lo, hi = q_offsets[qi], q_offsets[qi + 1]
            counts[qi] = _search_one(q_comps[lo:hi], q_values[lo:hi], query_cut, heap_factor, value_scale, k,
                                     term_blocks, block_offsets, block_docs, summary_scales, term_comps, sc_comps,
                                     sc_ptr, sc_blocks, sc_codes, fwd_offsets, fwd_packed, fwd_comps, fwd_values,
                                     live, dense, stamp, mark, acc, terms, hs, hd, out_docs[qi], out_scores[qi])
