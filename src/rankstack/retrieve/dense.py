"""Dense first stage: a DenseEncoder plus a FAISS DenseIndex.

    dense = Dense.build(corpus, "indexes/scifact-minilm", "sentence-transformers/all-MiniLM-L6-v2")
    dense = Dense("indexes/scifact-minilm")     # the encoder is rebuilt from the model the index records
    run = dense(queries)                          # top `k` hits per query
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from rankstack.data.corpus import Corpus, Document
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.encoders.base import as_encoder
from rankstack.errors import InputError
from rankstack.index.dense import DenseIndex, DenseIndexWriter, to_run
from rankstack.index.search import DenseParams
from rankstack.index.commit import refuse_existing
from rankstack.pipeline.stage import Stage

ENCODE_BATCH = 8192  # documents encoded, then added, together (more when an IVF/PQ index must train first)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def index_documents(writer: DenseIndexWriter, documents: Iterable[Document], encoder: Any) -> int:
    """Encode documents (title + text) and add them; return how many. Batches grow until an untrained
    IVF/PQ index has enough vectors to train on."""
    count, pending_ids, pending = 0, [], []
    for batch in _batches(documents, ENCODE_BATCH):
        pending_ids += [d.id for d in batch]
        pending.append(encoder.encode_documents([d.contents for d in batch]))
        if len(pending_ids) >= writer.min_train_vectors:
            writer.add(pending_ids, np.concatenate(pending))
            count += len(pending_ids)
            pending_ids, pending = [], []
    if pending_ids:
        writer.add(pending_ids, np.concatenate(pending))  # raises, naming the count needed, if too few to train
        count += len(pending_ids)
    return count


def _shard_documents(corpus: Corpus | list[Document], encoder: Any, shards: Path, shard_size: int
                     ) -> tuple[list[str], np.ndarray]:
    from rankstack.encoders import encode_corpus_to_shards, load_shards

    encode_corpus_to_shards(encoder, (d.contents for d in corpus), shards, shard_size)
    return [d.id for d in corpus], load_shards(shards)


class Dense(Stage):
    """Dense retrieval: queries encoded in batch, then searched in a FAISS index.

    `encoder`: a DenseEncoder, a model path or hub id, or None to load the model the index recorded; it must
    match the recorded model_info (IncompatibleIndexError otherwise). `nprobe` (IVF) and `ef_search` (HNSW)
    trade speed for recall; `rescore=True` re-scores the top `rescore_depth` approximate hits exactly from the
    stored vectors. `device`, `batch_size` and `progress` go to a DenseEncoder loaded here.
    """

    first_stage = True

    def __init__(self, index: str | Path | DenseIndex, encoder: Any = None, k: int = 1000, *,
                 nprobe: int | None = None, ef_search: int | None = None, rescore: bool = False,
                 rescore_depth: int | None = None, gpu: bool | None = None, device: str | None = None,
                 batch_size: int | None = None, progress: bool | None = None):
        from rankstack.records import check_compatible

        self.index = index if isinstance(index, DenseIndex) else DenseIndex(index, gpu=gpu)
        self._encoder_arg = os.fspath(encoder) if isinstance(encoder, (str, os.PathLike)) else None
        options = {k_: v for k_, v in {"device": device, "batch_size": batch_size, "progress": progress}.items()
                   if v is not None}
        self.encoder = as_encoder(encoder, self.index.encoder_info, kind="dense", **options)
        if self.index.encoder_info:
            check_compatible(self.index.encoder_info, self.encoder.model_info())
        if self.encoder.dimension != self.index.dim:
            raise InputError(f"the encoder gives {self.encoder.dimension}-dimensional vectors, the index holds "
                             f"{self.index.dim}-dimensional ones")
        self.k, self.nprobe, self.ef_search = k, nprobe, ef_search
        self.rescore, self.rescore_depth, self.gpu = rescore, rescore_depth, gpu

    @classmethod
    def build(cls, corpus: Corpus | Iterable[Document] | str | Path, index_path: str | Path, encoder: Any, *,
              factory: str = "Flat", metric: str = "ip", store_vectors: str | None = None,
              shards: str | Path | None = None, shard_size: int = 10_000, overwrite: bool = False,
              **options) -> "Dense":
        """Encode a corpus (a Corpus, Documents, or a corpus file) into a new index directory.

        `shards`: a directory for resumable encoding (rankstack.encoders.encode_corpus_to_shards): after a
        crash, building again with the same corpus skips the shards already written. `options` go to Dense().
        """
        refuse_existing(index_path, overwrite, "Dense")
        if isinstance(corpus, (str, Path)):
            corpus = Corpus(corpus)
        encoder_options = {k: options[k] for k in ("device", "batch_size", "progress") if options.get(k) is not None}
        encoder = as_encoder(encoder, None, kind="dense", **encoder_options)
        with DenseIndexWriter(index_path, factory=factory, dim=encoder.dimension, metric=metric,
                              encoder=encoder.model_info(), store_vectors=store_vectors, overwrite=overwrite) as writer:
            if shards is None:
                index_documents(writer, corpus, encoder)
            else:
                docs = corpus if isinstance(corpus, Corpus) else list(corpus)
                writer.add(*_shard_documents(docs, encoder, Path(shards), shard_size))
        return cls(index_path, encoder, **options)

    def add(self, documents: Corpus | Iterable[Document]) -> int:
        """Add (or replace, by id) documents and commit; this stage then searches the new snapshot."""
        with DenseIndexWriter(self.index.path, encoder=self.encoder.model_info()) as writer:
            count = index_documents(writer, documents, self.encoder)
        self._reopen()
        return count

    def delete(self, doc_ids: Iterable[str], missing: str = "error") -> None:
        """Delete documents by id (unknown ids raise InputError unless missing='ignore') and commit."""
        with DenseIndexWriter(self.index.path) as writer:
            writer.delete(doc_ids, missing)
        self._reopen()

    def _reopen(self) -> None:
        self.index = DenseIndex(self.index.path, gpu=self.gpu)

    def encode_queries(self, queries: Queries) -> tuple[list[str], np.ndarray]:
        """(query ids, query vectors); InputError naming an empty query."""
        qids = list(queries)
        empty = [q for q in qids if not queries[q] or not queries[q].strip()]
        if empty:
            raise InputError(f"empty query text for query id{'s' if len(empty) > 1 else ''} "
                             f"{', '.join(map(repr, empty[:5]))}: a dense encoder needs at least one word")
        return qids, self.encoder.encode_queries([queries[q] for q in qids])

    def search_vectors(self, vectors: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the top-k hits of query vectors, with this stage's knobs."""
        return self.index.search_arrays(vectors, k or self.k, self.params)

    @property
    def params(self) -> DenseParams:
        """This stage's knobs, as the index takes them."""
        return DenseParams(self.nprobe, self.ef_search, self.rescore, self.rescore_depth)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids, vectors = self.encode_queries(queries)
        if not qids:
            return Run({}, self.index.doc_ids, name="Dense")
        rows, scores = self.search_vectors(vectors)
        return to_run(qids, rows, scores, self.index.doc_ids, name="Dense")

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": str(self.index.path)}
        if self._encoder_arg is not None:
            out["encoder"] = self._encoder_arg
        out["k"] = self.k
        for key in ("nprobe", "ef_search", "rescore_depth", "gpu"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.rescore:
            out["rescore"] = True
        return out
