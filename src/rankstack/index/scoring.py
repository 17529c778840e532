"""The BM25 formulas (Lucene's), in one place: idf, length norms, a posting's contribution and its upper bounds.

A doc's score is the float32 sum, in query-term order from 0.0f, of ``w * tf / (tf + norm(d))`` (mode 0, BM25;
``w`` = query weight x idf) or ``w * value`` (mode 1, impact). ``norm(d) = k1 * (1 - b + b * len(d) / avgdl)``,
read per doc as ``table[codes[d]]`` (the kernels' ``norm`` pair: Lucene keeps one length byte per doc and a
256-entry norm cache; exact lengths are codes too), and equal, up to rounding, to ``norm_a + norm_b * len(d)``
(`norm_coefficients`), which is how upper bounds evaluate the norm of a block's shortest doc.

Upper bounds are computed in float64 and padded by a relative slack that covers float32 rounding, so that safe
pruning never drops a document the exhaustive kernel would return.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rankstack.index.unsigned import U

BM25, IMPACT = 0, 1  # kernel modes (rankstack.index.postings.MODES)
UB_SLACK = 1e-6  # relative padding of per-term / per-block upper bounds


def idf(df: np.ndarray, num_docs: int) -> np.ndarray:
    """Lucene's BM25 idf of document frequencies in a collection of `num_docs` documents, as float32."""
    df = np.asarray(df, dtype=np.float64)
    return np.log(1 + (num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def norm_table(lengths: np.ndarray, k1: float, b: float, avgdl: float) -> np.ndarray:
    """float32 BM25 norm of each length (of each length code: ``lengths[code]``)."""
    return (k1 * (1.0 - b + b * np.asarray(lengths, np.float64) / avgdl)).astype(np.float32)


def norm_coefficients(k1: float, b: float, avgdl: float) -> tuple[float, float]:
    """(norm_a, norm_b) with norm(len) = norm_a + norm_b * len."""
    return k1 * (1.0 - b), k1 * b / avgdl


@njit(cache=True, nogil=True, inline="always")
def doc_norm(norm, d):
    """BM25 norm of doc d; ``norm`` = (codes [n_docs], float32 table)."""
    return norm[1][norm[0][U(d)]]


@njit(cache=True, nogil=True, inline="always")
def contrib(mode, w, v, nd):
    """float32 contribution of posting value ``v`` at a doc whose norm is ``nd`` (ignored in impact mode)."""
    fv = np.float32(v)
    if mode == BM25:
        return w * fv / (fv + nd)
    return w * fv


@njit(cache=True, nogil=True, inline="always")
def bound(mode, w, v, ln, na, nb):
    """float64 upper bound of a contribution with value <= v at docs no shorter than ln."""
    if mode == BM25:
        if v >= 65535.0:  # saturated tf: any tf, and tf / (tf + norm) < 1
            return w * (1.0 + UB_SLACK)
        nl = (na + nb * ln) * (1.0 - UB_SLACK)
        if nl < 0.0:
            nl = 0.0
        return w * v / (v + nl) * (1.0 + UB_SLACK)
    return w * v * (1.0 + UB_SLACK)


@njit(cache=True, nogil=True, inline="always")
def block_bound(block_max, block_min_len, mode, w, b, na, nb):
    """Upper bound of a contribution of weight w within posting block b."""
    return bound(mode, w, np.float64(block_max[b]), np.float64(block_min_len[b]) if mode == BM25 else 0.0, na, nb)


@njit(cache=True, nogil=True, inline="always")
def sum_slack(n):
    """Relative slack covering the float32 rounding of a sum of n contributions (thresholds are divided by it)."""
    return 1.0 + (n + 2) * 2.0**-23
