"""MaxSim reranking: exact late-interaction scores for any candidate run.

Document token vectors come from a PLAID index (decompressed residuals) or are encoded on the fly from the
documents' texts (a CorpusTexts, an IndexTexts or a path, as for the cross-encoder).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import DocIds
from rankstack.encoders.base import as_encoder
from rankstack.errors import InputError
from rankstack.index.plaid import PlaidIndex, maxsim_scores
from rankstack.rerank.base import Reranker, check_depth
from rankstack.rerank.texts import Texts, texts_config, texts_from

BATCH_DOCS = 4096  # candidates whose token vectors are held at once (queries are batched to stay near it)


class MaxSim(Reranker):
    """Rerank the top `depth` candidates of each query by exact MaxSim; the rest keep their order below.

    >>> bm25 % 100 >> MaxSim(model_dir, texts=CorpusTexts(corpus))       # encode the candidates' texts
    >>> bm25 % 100 >> MaxSim(model_dir, index="indexes/scifact-plaid")   # or read them from a PLAID index

    `encoder`: a MultiVectorEncoder, or a model path / hub id (with an index: loaded with the settings it
    recorded, and checked against them). Exactly one of `index` (a PlaidIndex, a LateInteraction stage or a
    directory) and `texts`. `depth`: how many candidates per query are rescored (None: all).
    """

    def __init__(self, encoder: Any, *, index: Any = None, texts: Texts | str | os.PathLike | None = None,
                 depth: int | None = 100, device: str | None = None):
        if (index is None) == (texts is None):
            raise InputError("MaxSim needs exactly one source of document vectors: index=... or texts=...")
        self.index: PlaidIndex | None = None
        self.texts: Texts | None = None
        if index is not None:
            if isinstance(index, (str, os.PathLike)):
                index = PlaidIndex(index)
            self.index = getattr(index, "index", index)  # a LateInteraction stage holds its PlaidIndex as `.index`
            if not isinstance(self.index, PlaidIndex):
                raise InputError(f"index must be a PlaidIndex, a LateInteraction stage or a directory, got {index!r}")
            self.encoder = as_encoder(encoder, self.index.encoder_info or None, kind="multivector", device=device)
            self.index.check_encoder(self.encoder.model_info())
        else:
            self.texts = texts_from(texts)
            self.encoder = as_encoder(encoder, None, kind="multivector", device=device)
        self.depth = check_depth(depth)

    def document_vectors(self, doc_ids: list[str]) -> list[np.ndarray]:
        """Token vectors of documents by external id: decompressed from the index, or encoded from their texts."""
        if self.index is None:
            return self.encoder.encode_documents(self.texts.texts(doc_ids))
        docnos = self.index.docnos(doc_ids)
        if (docnos < 0).any():
            missing = doc_ids[int(np.flatnonzero(docnos < 0)[0])]
            raise InputError(f"document {missing!r} is not in the index {self.index.path}")
        return self.index.vectors(docnos)

    def score(self, queries: Queries, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> dict[str, np.ndarray]:
        """MaxSim of each query's head candidates, queries batched so that about BATCH_DOCS documents' vectors are
        held at once; each document's vectors fetched once per batch."""
        qids = [q for q, h in heads.items() if len(h)]
        out = {q: np.zeros(0, np.float32) for q in heads}
        per_batch = max(1, BATCH_DOCS // max(1, max((len(heads[q]) for q in qids), default=1)))
        for start in range(0, len(qids), per_batch):
            batch = qids[start:start + per_batch]
            unique, inverse = np.unique(np.concatenate([heads[q] for q in batch]), return_inverse=True)
            vectors = self.document_vectors(doc_ids.take(unique))
            lengths = np.array([len(v) for v in vectors], dtype=np.int64)
            query_vectors = self.encoder.encode_queries([queries[q] for q in batch])
            pos = 0
            for q, qv in zip(batch, query_vectors):
                rows = inverse[pos:pos + len(heads[q])].tolist()
                pos += len(rows)
                bounds = np.zeros(len(rows) + 1, np.int64)
                np.cumsum(lengths[rows], out=bounds[1:])
                out[q] = maxsim_scores(qv, np.concatenate([vectors[r] for r in rows]), bounds)
        return out

    def config(self) -> dict[str, Any]:
        if self.index is not None:  # the index records the encoder's settings: its model name rebuilds it
            return {"encoder": self.encoder.name, "index": str(self.index.path), "depth": self.depth}
        return {"encoder": self.encoder, "texts": texts_config(self.texts), "depth": self.depth}
