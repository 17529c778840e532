"""Rescore candidates with a bi-encoder: the dot product of query and document representations.

    BiEncoder(DenseEncoder("sentence-transformers/all-MiniLM-L6-v2"), texts="passages.tsv", depth=100)
    BiEncoder(SpladeEncoder("naver/splade-v3"), texts=CorpusTexts(corpus))

Any rankstack encoder with `encode_queries` / `encode_documents` works: dense ones give float arrays, sparse
ones SciPy CSR matrices. Each distinct candidate is encoded once per call; no index is needed, which makes this
the way to put a neural first-stage model on top of another stage's candidates (e.g. TREC DL's BM25 top 100).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import DocIds
from rankstack.rerank.base import Reranker, check_depth, head_texts, split
from rankstack.errors import InputError
from rankstack.rerank.texts import Texts, texts_config, texts_from


class BiEncoder(Reranker):
    """Rerank the top `depth` candidates of each query by the encoder's query-document dot product.

    `encoder`: any rankstack encoder (its repr rebuilds it); `texts`: a CorpusTexts, an IndexTexts or a path."""

    def __init__(self, encoder: Any, texts: Texts | str, depth: int | None = 100):
        check_depth(depth)
        if not (hasattr(encoder, "encode_queries") and hasattr(encoder, "encode_documents")):
            raise InputError(f"BiEncoder needs an encoder (e.g. DenseEncoder(model)), got {encoder!r:.80}")
        self.encoder, self.texts, self.depth = encoder, texts_from(texts), depth

    def score(self, queries: Queries, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> dict[str, np.ndarray]:
        texts, inverse = head_texts(heads, doc_ids, self.texts)
        qids = [q for q, head in heads.items() if len(head)]
        if not qids:
            return {q: np.zeros(0, np.float32) for q in heads}
        documents = self.encoder.encode_documents(texts)
        encoded = self.encoder.encode_queries([queries[q] for q in qids])
        row = dict(zip(qids, range(len(qids))))
        flat, start = [], 0
        for q, head in heads.items():
            if len(head):
                rows = documents[inverse[start:start + len(head)]]
                flat.append(np.asarray((rows @ encoded[row[q]].T).toarray() if hasattr(rows, "toarray")
                                       else rows @ encoded[row[q]]).ravel())
            start += len(head)
        return split(heads, np.concatenate(flat).astype(np.float32))

    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "texts": texts_config(self.texts), "depth": self.depth}
