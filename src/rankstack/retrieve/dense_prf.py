"""Rocchio pseudo-relevance feedback for dense retrieval (as in Li et al., "Pseudo Relevance Feedback with Deep
Language Models and Dense Retrievers: Successes and Pitfalls", TOIS 2023).

The query vector moves towards the mean of its top `fb_docs` document vectors,
`q' = alpha * q + beta * mean(d_1 .. d_fb_docs)` (L2-normalised when `normalize=True`), and the index is
searched again with q'. Document vectors come from the index's stored copy (or FAISS reconstruction for
Flat / HNSW indexes).

    prf = DenseRocchio(Dense("indexes/scifact-minilm"), fb_docs=3, alpha=1.0, beta=0.5)
    run = prf(queries)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.index.dense import to_run
from rankstack.pipeline.stage import Stage
from rankstack.retrieve.dense import Dense


def rocchio(queries: np.ndarray, feedback: np.ndarray, rows: np.ndarray, alpha: float, beta: float,
            normalize: bool = False) -> np.ndarray:
    """alpha * q + beta * mean of each query's feedback vectors [n, fb, dim] (rows -1 mark missing ones)."""
    valid = (rows >= 0)[..., None]
    mean = (feedback * valid).sum(1) / np.maximum(valid.sum(1), 1)
    out = (alpha * queries + beta * mean).astype(np.float32)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


class DenseRocchio(Stage):
    """Dense retrieval with Rocchio feedback from the top `fb_docs` documents of a first search."""

    first_stage = True

    def __init__(self, dense: Dense, fb_docs: int = 3, alpha: float = 1.0, beta: float = 0.5,
                 normalize: bool = False, k: int | None = None):
        if not isinstance(fb_docs, int) or fb_docs < 1:
            raise InputError(f"fb_docs must be a positive integer, got {fb_docs!r}")
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise InputError(f"alpha and beta must be non-negative and not both 0, got {alpha} and {beta}")
        self.dense, self.fb_docs, self.alpha, self.beta, self.normalize = dense, fb_docs, alpha, beta, normalize
        self.k = k or dense.k

    def expand(self, vectors: np.ndarray) -> np.ndarray:
        """The feedback query vectors of query vectors."""
        index = self.dense.index
        rows, _ = self.dense.search_vectors(vectors, self.fb_docs)
        feedback = index.vectors(np.maximum(rows, 0).ravel()).reshape(*rows.shape, index.dim)
        return rocchio(vectors, feedback, rows, self.alpha, self.beta, self.normalize)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids, vectors = self.dense.encode_queries(queries)
        if not qids:
            return Run({}, self.dense.index.doc_ids, name="Dense+Rocchio")
        rows, scores = self.dense.search_vectors(self.expand(vectors), self.k)
        return to_run(qids, rows, scores, self.dense.index.doc_ids, name="Dense+Rocchio")

    def config(self) -> dict[str, Any]:
        return {"dense": self.dense, "fb_docs": self.fb_docs, "alpha": self.alpha, "beta": self.beta,
                "normalize": self.normalize, "k": self.k}
