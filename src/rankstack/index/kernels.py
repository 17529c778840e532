"""Numba top-k query kernels over block-compressed postings (see `rankstack.index.postings`).

Every kernel takes the segment's arrays first (``seg``, a `rankstack.index.postings.PostingArrays`), then

* ``mode`` 0 BM25 / 1 impact (`rankstack.index.scoring`), ``n_docs`` (docs in the segment),
* ``term_ids`` int32[n] (distinct) and ``weights`` float32[n] (>= 0),
* ``norm`` = (``codes`` [n_docs], ``table`` float32), with ``norm_a``, ``norm_b``: the BM25 norms
  (`rankstack.index.scoring`; both arrays empty in impact mode),
* ``live`` bool[n_docs] (False: deleted) or an empty array for "all live", ``k`` >= 1,
* ``theta`` (pruning kernels): >= 1, multiplies the top-k threshold when deciding to skip;
  1 is safe (exact), larger is faster and may miss documents (returned scores stay exact).

Results: (docnos int32, scores float32) of the top ``k`` live docs with score > 0, by descending score then
ascending docno (`rankstack.index.topk`); all algorithms agree bit for bit:

* exhaustive (here): term at a time into a float32 accumulator, the reference;
* block-max MaxScore (`rankstack.index.maxscore`);
* Block-Max WAND (`rankstack.index.bmw`).

Implementation note: numba increfs/decrefs every array passed to a call, with atomic operations that cost far
more than a posting's work. So each algorithm is a thin allocating wrapper around a ``*_run`` function compiled
without reference counting (``_nrt=False``, like all the helpers it calls), which therefore must not allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.index import topk
from rankstack.index.bmw import bmw
from rankstack.index.maxscore import maxscore
from rankstack.index.postings import BLOCK, decode_block_docs, decode_block_values
from rankstack.index.scoring import BM25, IMPACT, contrib, doc_norm
from rankstack.index.unsigned import U

ALGORITHMS = {"exhaustive": 0, "maxscore": 1, "bmw": 2}


@njit(cache=True, nogil=True)
def exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k):
    """Term at a time into a float32 accumulator of n_docs, in query-term order, then top-k."""
    acc = np.zeros(n_docs, np.float32)
    bs, bd, kn, kth = topk.new(k)
    _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, np.empty((1, BLOCK), np.int32),
                    np.empty((1, BLOCK), np.uint32), bs, bd, kn, kth, k)
    return topk.results(bs, bd, kn, k)


@njit(cache=True, nogil=True, _nrt=False)
def _exhaustive_run(seg, mode, term_ids, weights, norm, live, acc, bd, bv, ts, td, kn, kth, k):
    term_blocks, term_last, block_last, block_offsets, dbits, vbits, data = (
        seg.term_blocks, seg.term_last_count, seg.block_last, seg.block_offsets, seg.block_doc_bits,
        seg.block_val_bits, seg.data)
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        w = weights[i]
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        for b in range(first, end):
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            decode_block_docs(block_offsets, dbits, block_last, data, b, b == first, n, bd, 0)
            decode_block_values(block_offsets, dbits, vbits, data, b, b == first, n, bv, 0)
            if mode == BM25:
                for j in range(n):
                    d = bd[0, j]
                    acc[U(d)] += contrib(BM25, w, bv[0, j], doc_norm(norm, d))
            else:
                for j in range(n):
                    acc[U(bd[0, j])] += contrib(IMPACT, w, bv[0, j], np.float32(0.0))
    has_live = live.shape[0] > 0
    for d in range(acc.shape[0]):
        s = acc[d]
        if s > kth[0] and (not has_live or live[d]):
            topk.offer(ts, td, kn, kth, k, s, d)


@njit(cache=True, nogil=True)
def search(seg, mode, n_docs, algo, term_ids, weights, norm, na, nb, live, k, theta):
    """One query with algorithm ``algo`` (`ALGORITHMS`: 0 exhaustive, 1 maxscore, 2 bmw)."""
    if algo == 0:
        return exhaustive(seg, mode, n_docs, term_ids, weights, norm, live, k)
    if algo == 1:
        return maxscore(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)
    return bmw(seg, mode, term_ids, weights, norm, na, nb, live, k, theta)


@njit(cache=True, nogil=True)
def _search_present(seg, mode, n_docs, algo, terms, weights, norm, na, nb, live, k, theta):
    """`search` over the query's terms present in the segment (id -1: absent, left out)."""
    present = terms >= 0
    if not present.all():
        terms, weights = terms[present], weights[present]
    return search(seg, mode, n_docs, algo, terms, weights, norm, na, nb, live, k, theta)


@njit(cache=True, nogil=True)
def _query(seg, mode, n_docs, algo, indptr, terms, weights, q, norm, na, nb, live, k, theta, out_docs, out_scores,
           out_counts):
    """Query q of a CSR batch, its terms absent from the segment (id -1) left out, into row q of the outputs."""
    a, e = indptr[q], indptr[q + 1]
    d, s = _search_present(seg, mode, n_docs, algo, terms[a:e], weights[a:e], norm, na, nb, live, k, theta)
    m = d.shape[0]
    out_counts[q] = m
    out_docs[q, :m] = d
    out_scores[q, :m] = s


@njit(cache=True, nogil=True)
def check_queries(indptr, terms, weights, num_terms):
    """0 for a well-formed CSR batch: ``indptr`` from 0 to len(terms), never decreasing, as many weights as terms,
    every term id -1 (absent) or below num_terms, every weight finite and >= 0; else 3 (the shape), 1 (a term id)
    or 2 (a weight)."""
    n = indptr.shape[0]
    if n < 1 or indptr[0] != 0 or indptr[n - 1] != terms.shape[0] or weights.shape[0] != terms.shape[0]:
        return 3
    for q in range(n - 1):
        if indptr[q + 1] < indptr[q]:
            return 3
    for i in range(terms.shape[0]):
        if terms[i] < -1 or terms[i] >= num_terms:
            return 1
        if not (weights[i] >= 0 and weights[i] < np.inf):
            return 2
    return 0


@njit(cache=True, nogil=True)
def search_one(seg, mode, n_docs, algo, terms, weights, norm, na, nb, live, k, theta):
    """One query (term ids, -1: absent from the segment, left out): (`check_queries`' answer, docnos, scores), the
    hits only when the answer is 0. The per-query path: no CSR batch and no output rows to allocate and copy."""
    problem = check_queries(np.array([0, terms.shape[0]], np.int64), terms, weights, seg.term_blocks.shape[0] - 1)
    if problem:
        return problem, np.zeros(0, np.int32), np.zeros(0, np.float32)
    docs, scores = _search_present(seg, mode, n_docs, algo, terms, weights, norm, na, nb, live, k, theta)
    return 0, docs, scores


@njit(cache=True, nogil=True)
def search_csr(seg, mode, n_docs, algo, indptr, terms, weights, norm, na, nb, live, k, theta, out_docs, out_scores,
               out_counts):
    """Each query of a CSR batch in turn (one thread). Query q is ``terms/weights[indptr[q]:indptr[q+1]]`` (term
    ids, -1: absent from the segment); its results go to ``out_docs/out_scores[q, :out_counts[q]]`` (shape [Q, k]).
    Returns `check_queries`' answer, and searches nothing unless it is 0 (the whole batch checked first)."""
    problem = check_queries(indptr, terms, weights, seg.term_blocks.shape[0] - 1)
    if problem:
        return problem
    for q in range(indptr.shape[0] - 1):
        _query(seg, mode, n_docs, algo, indptr, terms, weights, q, norm, na, nb, live, k, theta, out_docs, out_scores,
               out_counts)
    return 0
