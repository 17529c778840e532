"""Exhaustive learned-sparse scoring as one sparse matrix product per query batch (torch; CUDA or CPU).

The documents are a torch sparse CSR matrix [documents, vocabulary] on the device; a batch of queries
becomes a dense [vocabulary, batch] matrix, their product the [documents, batch] scores, and `torch.topk`
the results. Every document is scored, so the result is the exact top-k (ties at the k-th score may pick
another document of the same score than the inverted index, which prefers lower doc numbers).

    >>> scorer = SparseMatmulScorer(doc_matrix, device="cuda")       # scipy CSR, documents x vocabulary
    >>> [(docnos, scores), ...] = scorer.search(SparseQueries.from_matrix(query_matrix, vocabulary), k=10)
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.data.run import Hits
from rankstack.devices import select_device
from rankstack.errors import InputError
from rankstack.index.search import EMPTY, SparseQueries, check_k


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
    def search(self, queries: SparseQueries, k: int = 10, params: None = None) -> list[Hits]:
        """Top-k (docnos int32, scores float32) of each query (its columns: the documents' vocabulary), best
        first, ties by doc number; documents scoring 0 are left out."""
        k = check_k(k)
        if len(queries.vocabulary) != self.dim:
            raise InputError(f"queries have {len(queries.vocabulary)} columns, the documents {self.dim}")
        q = sp.csr_matrix((queries.data, queries.indices, queries.indptr), shape=(len(queries), self.dim))
        width = min(k, self.num_docs)
        out: list[Hits] = []
        for start in range(0, q.shape[0], self.batch):
            part = q[start:start + self.batch]
            if width == 0:
                out += [EMPTY] * part.shape[0]
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
                out.append(Hits(i[order], v[order]))
        return out
