"""Exhaustive learned-sparse scoring as one sparse matrix product per query batch (torch; CUDA or CPU).

The documents are a torch sparse CSR matrix [documents, vocabulary] on the device; a batch of queries
becomes a dense [vocabulary, batch] matrix, their product the [documents, batch] scores, and `torch.topk`
the results. Every document is scored, so the result is the exact top-k (ties at the k-th score may pick
another document of the same score than the inverted index, which prefers lower doc numbers).

    >>> scorer = SparseMatmulScorer(doc_matrix, device="cuda")       # scipy CSR, documents x vocabulary
    >>> [(docnos, scores), ...] = scorer.search_batch(query_matrix, k=10)
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.devices import select_device
from rankstack.errors import InputError

Queries = sp.csr_matrix | Sequence[tuple[np.ndarray, np.ndarray]]


class SparseMatmulScorer:
    """Documents held as a torch sparse CSR matrix on `device` (default: CUDA when available, else CPU).

    `live`: bool per document (False: deleted, never returned). `memory_mb` bounds the dense score matrix of
    one batch (documents x queries, float32), which sets how many queries go together.
    """

    def __init__(self, documents: sp.spmatrix, *, device: str | None = None, live: np.ndarray | None = None,
                 memory_mb: int = 1024):
        if not sp.issparse(documents):
            raise InputError(f"documents must be a scipy sparse matrix, got {type(documents).__name__}")
        m = sp.csr_matrix(documents, dtype=np.float32)
        m.sort_indices()
        self.device = select_device(device)
        self.num_docs, self.dim = m.shape
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self.documents = torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                                     torch.from_numpy(m.indices.astype(np.int64)),
                                                     torch.from_numpy(m.data), size=m.shape,
                                                     check_invariants=False).to(self.device)
        self.dead = None
        if live is not None:
            live = np.asarray(live, dtype=bool)
            if live.shape != (self.num_docs,):
                raise InputError(f"live has {live.shape[0]} entries, there are {self.num_docs} documents")
            if not live.all():
                self.dead = torch.from_numpy(~live).to(self.device)
        self.batch = max(1, (memory_mb << 20) // (4 * max(self.num_docs, 1)))

    def __repr__(self) -> str:
        return f"SparseMatmulScorer({self.num_docs} documents, dim={self.dim}, device={str(self.device)!r})"

    @torch.inference_mode()
    def search_batch(self, queries: Queries, k: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-k (docnos int32, scores float32) of each query (CSR rows [queries, dim] or (ids, weights)
        pairs), best first, ties by doc number; documents scoring 0 are left out."""
        if not 1 <= k <= 1_000_000:
            raise InputError(f"k must be between 1 and 1,000,000, got {k}")
        q = _as_csr(queries, self.dim)
        width = min(k, self.num_docs)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, q.shape[0], self.batch):
            part = q[start:start + self.batch]
            if width == 0:
                out += [(np.zeros(0, np.int32), np.zeros(0, np.float32))] * part.shape[0]
                continue
            dense = torch.from_numpy(part.T.toarray()).to(self.device)          # [dim, batch]
            scores = (self.documents @ dense).T                                   # [batch, docs]
            if self.dead is not None:
                scores[:, self.dead] = 0.0
            values, indices = torch.topk(scores, width, dim=1)
            values, indices = values.cpu().numpy(), indices.cpu().numpy().astype(np.int32)
            for v, i in zip(values, indices):
                keep = v > 0
                v, i = v[keep], i[keep]
                order = np.lexsort((i, -v))
                out.append((i[order], v[order]))
        return out


def _as_csr(queries: Queries, dim: int) -> sp.csr_matrix:
    if sp.issparse(queries):
        if queries.shape[1] != dim:
            raise InputError(f"queries have {queries.shape[1]} dimensions, the documents {dim}")
        q = sp.csr_matrix(queries, dtype=np.float32)
    else:
        rows = [(np.asarray(c, dtype=np.int64).ravel(), np.asarray(w, dtype=np.float32).ravel()) for c, w in queries]
        if any(c.shape != w.shape for c, w in rows):
            raise InputError("each query needs as many weights as component ids")
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(c) for c, _ in rows], out=indptr[1:])
        cols = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= dim):
            raise InputError(f"query component ids must be in 0..{dim - 1}")
        data = np.concatenate([w for _, w in rows]) if rows else np.zeros(0, np.float32)
        q = sp.csr_matrix((data, cols, indptr), shape=(len(rows), dim))
    if q.nnz and not (np.all(np.isfinite(q.data)) and q.data.min() >= 0):
        raise InputError("query weights must be finite and >= 0")
    return q
