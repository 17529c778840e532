"""Late-interaction first stage: a multi-vector (ColBERT-style) encoder plus a PLAID index."""

from __future__ import annotations

import math
import os
from itertools import islice
from typing import Any, Iterable

import numpy as np
from rankstack.progress import progress_bar

from rankstack.data.corpus import Corpus, Document
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.encoders.base import as_encoder
from rankstack.errors import InputError
from rankstack.index.plaid import PlaidIndex
from rankstack.index.search import PlaidParams
from rankstack.pipeline.stage import Stage

CHUNK_DOCS = 10_000  # documents encoded and added (one index chunk) at a time


class LateInteraction(Stage):
    """MaxSim retrieval over a PLAID index: candidates from the query tokens' nearest centroids, pruned by
    centroid interaction, rescored exactly over decompressed residuals.

    >>> late = LateInteraction.build(corpus, "indexes/scifact-plaid", MultiVectorEncoder(model_dir), nbits=2)
    >>> late = LateInteraction("indexes/scifact-plaid", model_dir)       # reopen; the encoder must match
    >>> run = late(queries)                                              # top `k` per query

    `encoder`: a MultiVectorEncoder, or a model path / hub id loaded with the settings the index recorded.
    `nprobe` centroids per query token, `ncandidates` documents kept by centroid interaction (default
    max(4k, 256)), of which the best `ndecompress` by full centroid interaction (default all) are rescored exactly;
    `centroid_threshold` skips, in the first centroid interaction, tokens whose centroid no query token scores that
    high on (PLAID's pruning; colbert-ai's defaults at k=10: nprobe=1, ncandidates=256, ndecompress=64,
    centroid_threshold=0.5). See rankstack.index.search.PlaidParams.
    `rescore=True`: the final MaxSim uses the index's stored full-precision vectors instead of the decompressed
    residuals (needs an index built with store_vectors="float16"):

    >>> late = LateInteraction.build(corpus, "indexes/scifact-plaid16", encoder, store_vectors="float16", rescore=True)
    """

    first_stage = True

    def __init__(self, index: str | os.PathLike | PlaidIndex, encoder: Any, k: int = 1000, nprobe: int = 4,
                 ncandidates: int | None = None, device: str | None = None, progress: bool | None = None,
                 rescore: bool = False, ndecompress: int | None = None, centroid_threshold: float | None = None):
        self.index = index if isinstance(index, PlaidIndex) else PlaidIndex(index)
        self.encoder = as_encoder(encoder, self.index.encoder_info or None, kind="multivector", device=device)
        self.index.check_encoder(self.encoder.model_info())
        if k < 1 or nprobe < 1 or (ncandidates is not None and ncandidates < k) or \
                (ndecompress is not None and ndecompress < k):
            raise InputError(f"need k >= 1, nprobe >= 1, ncandidates >= k and ndecompress >= k; got k={k}, "
                             f"nprobe={nprobe}, ncandidates={ncandidates}, ndecompress={ndecompress}")
        if rescore:
            self.index.require_stored()
        self.k, self.nprobe, self.ncandidates, self.progress = k, nprobe, ncandidates, progress
        self.rescore = bool(rescore)
        self.ndecompress, self.centroid_threshold = ndecompress, centroid_threshold

    @classmethod
    def build(cls, corpus: Corpus | Iterable[Document] | str | os.PathLike, index_path: str | os.PathLike,
              encoder: Any, *, nbits: int = 2, num_centroids: int | None = None, kmeans_iters: int = 10,
              kmeans_sample: int | None = None, buckets: str = "global", store_vectors: str | None = None,
              sample_docs: int | None = None, chunk_docs: int = CHUNK_DOCS, seed: int = 0, overwrite: bool = False,
              progress: bool | None = None,
              **search_options) -> "LateInteraction":
        """Encode a corpus token-wise and index it: centroids and buckets are trained on the vectors of
        `sample_docs` documents (default ColBERTv2's 16 * sqrt(120 * documents)), which are added first; the rest
        follow `chunk_docs` at a time. `buckets`: "global" (ColBERTv2) or "per_dimension" residual quantiles
        (PlaidIndex.create). `store_vectors` "float16": also store the token vectors, for `rescore=True`."""
        encoder = as_encoder(encoder, None, kind="multivector")
        docs = list(Corpus(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus)
        if not docs:
            raise InputError("the corpus is empty")
        n_sample = min(len(docs), sample_docs or 1 + int(16 * math.sqrt(120 * len(docs))))
        order = np.random.default_rng(seed).permutation(len(docs))
        sampled = [docs[i] for i in np.sort(order[:n_sample])]
        rest = [docs[i] for i in np.sort(order[n_sample:])]
        bar = progress_bar(progress, total=len(docs), desc="encoding", unit=" docs")
        sample_vectors = encoder.encode_documents([d.contents for d in sampled])
        bar.update(len(sampled))
        tokens = sum(len(v) for v in sample_vectors)
        index = PlaidIndex.create(index_path, encoder.model_info(), sample_vectors, nbits=nbits,
                                  num_centroids=num_centroids, kmeans_iters=kmeans_iters,
                                  kmeans_sample=kmeans_sample, buckets=buckets, store_vectors=store_vectors, seed=seed,
                                  estimated_tokens=round(tokens * len(docs) / len(sampled)), overwrite=overwrite)
        for start in range(0, len(sampled), chunk_docs):
            index.add([d.id for d in sampled[start:start + chunk_docs]], sample_vectors[start:start + chunk_docs])
        del sample_vectors
        for start in range(0, len(rest), chunk_docs):
            part = rest[start:start + chunk_docs]
            index.add([d.id for d in part], encoder.encode_documents([d.contents for d in part]))
            bar.update(len(part))
        bar.close()
        return cls(index, encoder, progress=progress, **search_options)

    def add(self, documents: Corpus | Iterable[Document]) -> int:
        """Encode and add (or replace, by id) documents with the index's centroids; returns how many."""
        count = 0
        iterator = iter(documents)
        while part := list(islice(iterator, CHUNK_DOCS)):
            count += self.index.add([d.id for d in part], self.encoder.encode_documents([d.contents for d in part]))
        return count

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id (unknown ids are an InputError, and nothing is deleted)."""
        return self.index.delete(doc_ids)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids = list(queries)
        vectors = self.encoder.encode_queries([queries[q] for q in qids]) if qids else []
        params = PlaidParams(self.nprobe, self.ncandidates, self.rescore, self.centroid_threshold, self.ndecompress)
        results = {}
        for qid, q in progress_bar(self.progress, zip(qids, vectors), total=len(qids), desc="LateInteraction",
                                   unit=" queries"):
            results[qid] = self.index.search([q], self.k, params)[0]
        return Run(results, self.index.doc_ids, name="LateInteraction", presorted=True)

    def config(self) -> dict[str, Any]:
        out = {"index": str(self.index.path), "encoder": self.encoder.name, "k": self.k,
               "nprobe": self.nprobe}
        if self.ncandidates is not None:
            out["ncandidates"] = self.ncandidates
        if self.rescore:
            out["rescore"] = True
        for name in ("ndecompress", "centroid_threshold"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out
