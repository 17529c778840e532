"""Rescore candidates with a bi-encoder: the dot product of query and document representations.

    BiEncoder(DenseEncoder("sentence-transformers/all-MiniLM-L6-v2"), texts="passages.tsv", depth=100)
    BiEncoder(SpladeEncoder("naver/splade-v3"), texts=CorpusTexts(corpus))
    BiEncoder(index=dense, depth=100)       # document vectors read from a Dense stage's index, not encoded

Any rankstack encoder with `encode_queries` / `encode_documents` works: dense ones give float arrays, sparse
ones SciPy CSR matrices. With `texts`, each distinct candidate is encoded once per call and no index is needed,
which makes this the way to put a neural first-stage model on top of another stage's candidates (e.g. TREC DL's
BM25 top 100). With `index` (a Dense stage or a dense index directory), only the queries are encoded, by the
index's own encoder, and the candidates' vectors come from the index, as it is after any add or delete through
that stage.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import DocIds
from rankstack.errors import InputError
from rankstack.rerank.base import Reranker, check_depth, head_texts, split
from rankstack.rerank.texts import Texts, texts_config, texts_from


class BiEncoder(Reranker):
    """Rerank the top `depth` candidates of each query by the encoder's query-document dot product.

    Exactly one source of documents: `texts` (a CorpusTexts, an IndexTexts or a path; encoded by `encoder`, any
    rankstack encoder, whose repr rebuilds it) or `index` (a Dense stage or a dense index directory: its vectors,
    and its encoder for the queries; `encoder` may then only be a model path, checked against the index's record).
    """

    def __init__(self, encoder: Any = None, texts: Texts | str | None = None, depth: int | None = 100, *,
                 index: Any = None):
        check_depth(depth)
        if (texts is None) == (index is None):
            raise InputError("BiEncoder needs exactly one source of documents: texts=... (encoded) or index=... "
                             "(a Dense stage or a dense index directory, whose vectors are used)")
        self.dense = None
        if index is not None:
            from rankstack.retrieve.dense import Dense

            if isinstance(index, (str, os.PathLike)):
                index = Dense(index, encoder)
            elif encoder is not None:
                raise InputError("BiEncoder(index=<Dense stage>) encodes queries with that stage's encoder: "
                                 "give no encoder")
            if not isinstance(index, Dense):
                raise InputError(f"index must be a Dense stage or a dense index directory, got {index!r:.80}")
            self.dense, encoder = index, index.encoder
        if not (hasattr(encoder, "encode_queries") and hasattr(encoder, "encode_documents")):
            raise InputError(f"BiEncoder needs an encoder (e.g. DenseEncoder(model)), got {encoder!r:.80}")
        self.encoder, self.depth = encoder, depth
        self.texts = None if texts is None else texts_from(texts)

    def score(self, queries: Queries, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> dict[str, np.ndarray]:
        qids = [q for q, head in heads.items() if len(head)]
        if not qids:
            return {q: np.zeros(0, np.float32) for q in heads}
        if self.dense is None:
            texts, inverse = head_texts(heads, doc_ids, self.texts)
            documents = self.encoder.encode_documents(texts)
        else:
            documents, inverse = self._index_vectors(heads, doc_ids)
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

    def _index_vectors(self, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the heads' distinct documents, read from the index's current snapshot, and for every
        head entry in order its row among them."""
        index = self.dense.index
        unique, inverse = np.unique(np.concatenate([np.zeros(0, np.int32), *heads.values()]), return_inverse=True)
        ids = doc_ids.take(unique)
        positions = np.fromiter((index.position(i) for i in ids), dtype=np.int64, count=len(ids))
        if (positions < 0).any():
            missing = ids[int(np.flatnonzero(positions < 0)[0])]
            raise InputError(f"document {missing!r} is not in the dense index {index.path.name}")
        return index.vectors(positions), inverse

    def config(self) -> dict[str, Any]:
        if self.dense is not None:
            return {"index": str(self.dense.index.path), "depth": self.depth}
        return {"encoder": self.encoder, "texts": texts_config(self.texts), "depth": self.depth}
