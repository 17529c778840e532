"""Numba kernels of the PLAID index: residual packing, decompression, candidate generation, centroid interaction.

Residuals are stored as `nbits` bucket indices per dimension, packed big-end first into bytes (8 // nbits
dimensions per byte), as ColBERTv2 stores them.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def pack_buckets(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """[n, dim] uint8 bucket indices (< 2**nbits) -> [n, dim * nbits // 8] packed bytes."""
    n, dim = buckets.shape
    per_byte = 8 // nbits
    out = np.zeros((n, dim // per_byte), dtype=np.uint8)
    for i in range(n):
        for j in range(dim // per_byte):
            byte = 0
            for s in range(per_byte):
                byte = (byte << nbits) | buckets[i, j * per_byte + s]
            out[i, j] = byte
    return out


def byte_table(weights: np.ndarray, nbits: int) -> np.ndarray:
    """[256, 8 // nbits] float32: the residual values of the dimensions one packed byte holds."""
    per_byte = 8 // nbits
    byte = np.arange(256)
    shifts = nbits * np.arange(per_byte - 1, -1, -1)
    return np.ascontiguousarray(weights[(byte[:, None] >> shifts) & ((1 << nbits) - 1)], dtype=np.float32)


def byte_tables(weights: np.ndarray, nbits: int, dim: int) -> np.ndarray:
    """[dim * nbits // 8, 256, 8 // nbits] float32: per packed byte position, the residual values its byte holds.
    `weights`: [2**nbits] bucket values shared by every dimension, or [dim, 2**nbits] per dimension."""
    per_byte = 8 // nbits
    w = np.broadcast_to(np.asarray(weights, np.float32), (dim, 1 << nbits))
    return np.ascontiguousarray(np.stack([byte_table(w[j * per_byte:(j + 1) * per_byte].T, nbits)
                                          [:, np.arange(per_byte), np.arange(per_byte)]
                                          for j in range(dim // per_byte)]))


@numba.njit(cache=True, nogil=True)
def bucketize(residuals: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """[n, dim] residuals -> [n, dim] uint8 bucket indices: per value, how many of its dimension's cut-offs
    (`cutoffs` [dim, 2**nbits - 1], ascending) lie below it (np.searchsorted's left side)."""
    n, dim = residuals.shape
    out = np.empty((n, dim), dtype=np.uint8)
    for i in range(n):
        for d in range(dim):
            x = residuals[i, d]
            lo, hi = 0, cutoffs.shape[1]  # binary search: the first cut-off >= x
            while lo < hi:
                mid = (lo + hi) // 2
                if cutoffs[d, mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            out[i, d] = lo
    return out


@numba.njit(cache=True, nogil=True)
def decompress(codes: np.ndarray, packed: np.ndarray, starts: np.ndarray, ends: np.ndarray, centroids: np.ndarray,
               table: np.ndarray, normalize: bool) -> np.ndarray:
    """Token vectors of the token ranges [starts[i], ends[i]), concatenated: centroid + bucket weights (`table`:
    byte_tables), L2-normalised when `normalize` (as ColBERTv2 decompresses)."""
    dim = centroids.shape[1]
    per_byte = table.shape[2]
    total = 0
    for i in range(len(starts)):
        total += ends[i] - starts[i]
    out = np.empty((total, dim), dtype=np.float32)
    row = 0
    for i in range(len(starts)):
        for t in range(starts[i], ends[i]):
            c = centroids[codes[t]]
            norm = 0.0
            for j in range(packed.shape[1]):
                w = table[j, packed[t, j]]
                for s in range(per_byte):
                    x = c[j * per_byte + s] + w[s]
                    out[row, j * per_byte + s] = x
                    norm += x * x
            if normalize and norm > 0:
                scale = np.float32(1.0 / np.sqrt(norm))
                for d in range(dim):
                    out[row, d] *= scale
            row += 1
    return out


@numba.njit(cache=True, nogil=True)
def candidate_docs(ivf_offsets: np.ndarray, ivf_docs: np.ndarray, probes: np.ndarray, live: np.ndarray) -> np.ndarray:
    """The live documents (local numbers, ascending) listed under any of the probed centroids."""
    seen = np.zeros(len(live), dtype=np.bool_)
    count = 0
    for c in probes:
        for p in range(ivf_offsets[c], ivf_offsets[c + 1]):
            d = ivf_docs[p]
            if not seen[d] and live[d]:
                seen[d] = True
                count += 1
    out = np.empty(count, dtype=np.int32)
    k = 0
    for d in range(len(seen)):
        if seen[d]:
            out[k] = d
            k += 1
    return out


@numba.njit(cache=True, nogil=True)
def centroid_interaction(codes: np.ndarray, doc_offsets: np.ndarray, docs: np.ndarray,
                         centroid_scores: np.ndarray) -> np.ndarray:
    """PLAID's approximate MaxSim: each document token stands for its centroid, so a document scores
    sum over query tokens of the max, over its distinct centroids, of the query-token x centroid score.
    `centroid_scores` is [n_centroids, n_query_tokens] (one centroid's scores contiguous)."""
    nq = centroid_scores.shape[1]
    out = np.empty(len(docs), dtype=np.float32)
    best = np.empty(nq, dtype=np.float32)
    for i in range(len(docs)):
        d = docs[i]
        best[:] = -np.inf
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            row = centroid_scores[codes[t]]
            for q in range(nq):
                if row[q] > best[q]:
                    best[q] = row[q]
        out[i] = best.sum()
    return out


@numba.njit(cache=True, nogil=True)
def pruned_centroid_interaction(codes: np.ndarray, doc_offsets: np.ndarray, docs: np.ndarray,
                                centroid_scores: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """centroid_interaction over the document tokens whose centroid is `kept` only (PLAID's centroid pruning: a
    centroid no query token scores well on cannot raise a maximum much, and most tokens are skipped unread).
    A document with no kept token scores -inf."""
    nq = centroid_scores.shape[1]
    out = np.empty(len(docs), dtype=np.float32)
    best = np.empty(nq, dtype=np.float32)
    for i in range(len(docs)):
        d = docs[i]
        best[:] = -np.inf
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            c = codes[t]
            if not kept[c]:
                continue
            row = centroid_scores[c]
            for q in range(nq):
                if row[q] > best[q]:
                    best[q] = row[q]
        out[i] = best.sum()
    return out


@numba.njit(cache=True, nogil=True)
def segment_maxsim(scores: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """[n_query_tokens, n_doc_tokens] similarities -> per document (columns bounds[i]:bounds[i+1]) the sum over
    query tokens of the max over its tokens: MaxSim."""
    nq = scores.shape[0]
    out = np.zeros(len(bounds) - 1, dtype=np.float32)
    for i in range(len(bounds) - 1):
        total = 0.0
        for q in range(nq):
            m = -np.inf
            for t in range(bounds[i], bounds[i + 1]):
                if scores[q, t] > m:
                    m = scores[q, t]
            total += m
        out[i] = total
    return out
