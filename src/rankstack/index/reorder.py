"""Document reordering by recursive graph bisection (BP; Dhulipala et al., KDD 2016, as PISA and Lucene's
BPIndexReorderer do it): documents that share terms get nearby docnos, so the log-gap cost of the postings falls
(what codecs that spend bits per gap gain from) and block maxima concentrate (what block-max skipping gains from).
This index packs each block of 128 gaps at one bit width, which clustering does not shrink: measure before use
(`bench/bench_reorder.py`, figures in the README).

The documents are split in two halves; for a number of iterations every document's gain from moving to the other
half is computed under the log-gap cost model, and pairs with a positive total gain are swapped; then each half is
bisected in turn, down to small leaves. Deterministic: the same postings give the same order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ITERATIONS = 20  # swap rounds per bisection (PISA's default)
LEAF = 16  # partitions this small are left as they are
MIN_DF = 2  # terms in fewer documents cannot bring documents together


def bisection_order(term_ids: np.ndarray, docnos: np.ndarray, num_docs: int) -> np.ndarray:
    """The new order of a segment's documents from its postings (term id, docno pairs, any order): ``order[new] =
    old`` docno, a permutation of range(num_docs)."""
    term_ids = np.asarray(term_ids, np.int64)
    docnos = np.asarray(docnos, np.int64)
    if num_docs < 2 * LEAF or not len(term_ids):
        return np.arange(num_docs, dtype=np.int64)
    _, dense_terms, df = np.unique(term_ids, return_inverse=True, return_counts=True)
    keep = df[dense_terms] >= MIN_DF
    docs, terms = docnos[keep], dense_terms[keep].astype(np.int32)
    by_doc = np.argsort(docs, kind="stable")
    doc_ptr = np.zeros(num_docs + 1, np.int64)
    np.cumsum(np.bincount(docs, minlength=num_docs), out=doc_ptr[1:])
    depth = max(1, int(np.ceil(np.log2(num_docs / LEAF))))
    return _bisect(doc_ptr, terms[by_doc], len(df), depth, ITERATIONS, LEAF)


@njit(cache=True)
def _cost(degree, size):
    """Log-gap cost of a term's `degree` postings among `size` documents."""
    return degree * np.log2(size / (degree + 1.0))


@njit(cache=True)
def _bisect(doc_ptr, doc_terms, num_terms, max_depth, iterations, leaf):
    n = doc_ptr.shape[0] - 1
    order = np.arange(n)
    left_deg = np.zeros(num_terms, np.int64)
    right_deg = np.zeros(num_terms, np.int64)
    gains = np.empty(n, np.float64)
    stack = [(np.int64(0), np.int64(n), np.int64(0))]
    while len(stack):
        start, end, depth = stack.pop()
        if end - start <= leaf or depth >= max_depth:
            continue
        mid = (start + end) // 2
        n1, n2 = float(mid - start), float(end - mid)
        for _ in range(iterations):
            for i in range(start, end):
                d = order[i]
                for j in range(doc_ptr[d], doc_ptr[d + 1]):
                    if i < mid:
                        left_deg[doc_terms[j]] += 1
                    else:
                        right_deg[doc_terms[j]] += 1
            for i in range(start, end):  # the cost saved by moving document i to the other half
                d = order[i]
                g = 0.0
                for j in range(doc_ptr[d], doc_ptr[d + 1]):
                    a, b = left_deg[doc_terms[j]], right_deg[doc_terms[j]]
                    before = _cost(a, n1) + _cost(b, n2)
                    if i < mid:
                        g += before - _cost(a - 1, n1) - _cost(b + 1, n2)
                    else:
                        g += before - _cost(a + 1, n1) - _cost(b - 1, n2)
                gains[i] = g
            left_rank = start + np.argsort(-gains[start:mid], kind="mergesort")
            right_rank = mid + np.argsort(-gains[mid:end], kind="mergesort")
            left, right = order[left_rank], order[right_rank]
            swapped = 0
            for j in range(min(left.shape[0], right.shape[0])):
                if gains[left_rank[j]] + gains[right_rank[j]] <= 0:
                    break
                left[j], right[j] = right[j], left[j]
                swapped += 1
            order[start:mid] = left
            order[mid:end] = right
            for i in range(start, end):
                d = order[i]
                for j in range(doc_ptr[d], doc_ptr[d + 1]):
                    left_deg[doc_terms[j]] = 0
                    right_deg[doc_terms[j]] = 0
            if swapped == 0:
                break
        stack.append((start, mid, depth + 1))
        stack.append((mid, end, depth + 1))
    return order
