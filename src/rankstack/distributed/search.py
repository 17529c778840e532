"""Sharded search: first stages over a sharded index, each shard served by Ray actors, scores identical to one index.

    bm25 = ShardedBM25("idx/pypi-bm25", replicas=2)       # starts 2 actors per shard
    run = bm25(queries)                                  # a Run, as BM25(...) gives for the same documents
    pipeline = bm25 % 100 >> CrossEncoder(model, texts=ShardTexts(bm25))

A batch of queries is prepared once on the driver (analysed, or encoded), sent to every shard at once, and each
shard's top k (scatter) merged into the exact top k (gather): a shard's top k holds every document of the global top
k that it holds, and ties break by global doc number (shards hold contiguous ranges of the corpus, in order), as in
one index. BM25 is scored with the whole collection's statistics (documents, total length, document frequencies
added up over the shards, asked for each batch), not each shard's own; learned sparse (a common impact scale, set
by the build) and dense scores need none.

With `allow_partial=True`, a shard that cannot answer (see rankstack.distributed.shards) is left out: the run is a
`ShardedRun` whose `missing_shards` names it, and a PartialResultsWarning says so.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from rankstack.data.corpus import Document
from rankstack.data.queries import Queries
from rankstack.data.run import Hits, Run
from rankstack.distributed.layout import ShardedIndex
from rankstack.distributed.shards import RETRIES, UNREACHABLE_WAIT, ShardPool
from rankstack.errors import IncompatibleIndexError, InputError
from rankstack.index.search import EMPTY, CollectionStats, DenseParams, InvertedParams, SparseQueries, Vocabulary
from rankstack.pipeline.stage import Stage

QUERY_CHUNK = 1024  # queries sent to the shards together


class PartialResultsWarning(UserWarning):
    """Some shards did not answer: results come from the others (allow_partial=True)."""


class ShardedRun(Run):
    """A Run from a sharded index; `missing_shards` names shards that did not answer (empty: complete)."""

    def __init__(self, results: Mapping[str, tuple[np.ndarray, np.ndarray]], doc_ids: Any, name: str,
                 missing_shards: Sequence[int] = ()):
        super().__init__(results, doc_ids, name=name, presorted=True)
        self.missing_shards = tuple(sorted(set(missing_shards)))

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)


class ShardedDocIds:
    """Global doc numbers (shards laid end to end) -> external ids, asked of the shard servers in one round."""

    def __init__(self, pool: ShardPool):
        self.pool = pool

    def __len__(self) -> int:
        return int(self.pool.bases[-1])

    def __getitem__(self, docno: int) -> str:
        return self.take(np.array([docno]))[0]

    def take(self, docnos: np.ndarray) -> list[str]:
        docnos = np.asarray(docnos, dtype=np.int64)
        shard = np.searchsorted(self.pool.bases, docnos, side="right") - 1
        wanted = sorted(set(shard.tolist()))
        per_shard = [(docnos[shard == s] - self.pool.bases[s],) if s in wanted else () for s in range(len(self.pool))]
        found, missing = self.pool.call("ids", per_shard=per_shard, shards=wanted)
        if missing:
            raise InputError(f"the ids of shards {missing} cannot be read: they do not answer")
        out: list[str] = [""] * len(docnos)
        for s in wanted:
            for i, doc_id in zip(np.flatnonzero(shard == s).tolist(), found[s]):
                out[i] = doc_id
        return out


def _rows(queries: Any, start: int, end: int) -> Any:
    """Rows start..end-1 of prepared queries: a SparseQueries batch or a matrix of vectors."""
    if isinstance(queries, SparseQueries):
        a, b = int(queries.indptr[start]), int(queries.indptr[end])
        return SparseQueries(queries.indptr[start:end + 1] - a, queries.indices[a:b], queries.data[a:b],
                             queries.vocabulary)
    return queries[start:end]


def merge_top_k(parts: Sequence[tuple[np.ndarray, np.ndarray]], bases: Sequence[int], k: int) -> Hits:
    """The exact top k of per-shard top-k hits (local doc numbers), as global doc numbers: best score first, ties
    by global doc number."""
    docnos = np.concatenate([np.asarray(d, dtype=np.int64) + base for (d, _), base in zip(parts, bases)])
    scores = np.concatenate([np.asarray(s, dtype=np.float32) for _, s in parts])
    order = np.lexsort((docnos, -scores))[:k]
    return Hits(docnos[order].astype(np.int32), scores[order])


class ShardedStage(Stage):
    """What the sharded first stages share: the shard servers, scatter-gather and the run (see the module
    docstring). `replicas` actors per shard with `cpus_per_shard` CPUs reserved (default: none: Ray's default for
    actors, see rankstack.distributed.shards.cpu_options) and `gpus_per_shard` GPUs each; `retries`,
    `unreachable_wait` (seconds a server on a lost node is waited for), `timeout` (seconds per call) and
    `allow_partial` say what happens when actors die."""

    first_stage = True
    kind = ""

    def __init__(self, index: str | os.PathLike | ShardedIndex, k: int = 1000, *, replicas: int = 1,
                 allow_partial: bool = False, retries: int = RETRIES, timeout: float | None = None,
                 unreachable_wait: float = UNREACHABLE_WAIT, cpus_per_shard: float | None = None,
                 gpus_per_shard: float = 0, progress: bool | None = None):
        self.sharded = index if isinstance(index, ShardedIndex) else ShardedIndex(index)
        if self.sharded.kind != self.kind:
            raise IncompatibleIndexError(f"{self.sharded.path} holds {self.sharded.kind} shards, not {self.kind} ones")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise InputError(f"replicas must be a positive integer, got {replicas!r}")
        if isinstance(unreachable_wait, bool) or not isinstance(unreachable_wait, (int, float)) or \
                not unreachable_wait >= 0:
            raise InputError(f"unreachable_wait must be a number of seconds >= 0, got {unreachable_wait!r}")
        self.k, self.replicas, self.allow_partial, self.retries, self.timeout = k, replicas, allow_partial, retries, \
            timeout
        self.unreachable_wait = unreachable_wait
        self.cpus_per_shard, self.gpus_per_shard, self.progress = cpus_per_shard, gpus_per_shard, progress
        self.pool = ShardPool(self.sharded, replicas, cpus=cpus_per_shard, gpus=gpus_per_shard, retries=retries,
                              timeout=timeout, allow_partial=allow_partial, unreachable_wait=unreachable_wait)
        self.doc_ids = ShardedDocIds(self.pool)
        settings = [info["settings"] for info in self.pool.infos]
        for s, other in enumerate(settings[1:], 1):
            if self._comparable(other) != self._comparable(settings[0]):
                raise IncompatibleIndexError(f"shard {s} of {self.sharded.path} was built with other settings than "
                                             "shard 0; rebuild the sharded index")
        self.settings = settings[0]

    def _comparable(self, settings: dict[str, Any]) -> Any:
        return settings

    # --- the contract ------------------------------------------------------------------------------

    def transform(self, queries: Queries, run: Run | None = None) -> ShardedRun:
        qids = list(queries)
        hits, missing = self.search_texts([queries[q] for q in qids], self.k)
        if missing:
            warnings.warn(f"shards {missing} of {self.sharded.path} did not answer: results come from the others",
                          PartialResultsWarning, stacklevel=3)
        return ShardedRun(dict(zip(qids, hits)), self.doc_ids, type(self).__name__, missing)

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[list[Hits], list[int]]:
        """Each query text's global top k, and the shards left out; queries are prepared (analysed, encoded) in
        the batches the one-node stage uses, so that they are the same queries."""
        raise NotImplementedError

    def search_prepared(self, queries: Any, n: int, k: int, params: Any) -> tuple[list[Hits], list[int]]:
        """Prepared queries (SparseQueries or vectors; `n` of them) searched on every shard and merged, in chunks
        of QUERY_CHUNK."""
        out: list[Hits] = []
        missing: set[int] = set()
        for start in range(0, n, QUERY_CHUNK):
            chunk = _rows(queries, start, min(n, start + QUERY_CHUNK))
            hits, lost = self.pool.call("search", chunk, k, params)
            out.extend(self._gather(hits, min(n, start + QUERY_CHUNK) - start, k))
            missing.update(lost)
        return out, sorted(missing)

    def _gather(self, per_shard: dict[int, list], n: int, k: int) -> list[Hits]:
        shards = sorted(per_shard)
        bases = [int(self.pool.bases[s]) for s in shards]
        if not shards:
            return [EMPTY] * n
        return [merge_top_k([per_shard[s][q] for s in shards], bases, k) for q in range(n)]

    @property
    def num_live(self) -> int:
        """Live documents over all shards, as their servers opened them."""
        return sum(int(info["live"]) for info in self.pool.infos)

    def identity(self) -> list:
        """The commit of every shard (caches key on it)."""
        return [info["commit"] for info in self.pool.infos]

    def close(self) -> None:
        """Stop the shard servers."""
        self.pool.close()

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"index": str(self.sharded.path), "k": self.k}
        defaults = {"replicas": 1, "allow_partial": False, "retries": RETRIES, "timeout": None,
                    "unreachable_wait": UNREACHABLE_WAIT, "cpus_per_shard": None, "gpus_per_shard": 0}
        config.update({key: getattr(self, key) for key, default in defaults.items() if getattr(self, key) != default})
        return config


class ShardedBM25(ShardedStage):
    """BM25 over a sharded BM25 index, scored with the whole collection's statistics: the same hits and scores as
    `BM25` over one index of the same documents. Knobs as BM25's (`algorithm`, `theta`, `k1`, `b`)."""

    kind = "bm25"

    def __init__(self, index: str | os.PathLike | ShardedIndex, k: int = 1000, *, algorithm: str = "maxscore",
                 theta: float = 1.0, k1: float | None = None, b: float | None = None, **options: Any):
        super().__init__(index, k, **options)
        from rankstack.text.analyzer import Analyzer

        self.analyzer = Analyzer.from_config(self.settings["metadata"]["analyzer"])
        self.algorithm, self.theta, self.k1, self.b = algorithm, theta, k1, b
        self.num_docs = sum(int(i["size"]) for i in self.pool.infos)
        self.sum_lengths = sum(int(i["sum_lengths"]) for i in self.pool.infos)

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[list[Hits], list[int]]:
        out: list[Hits] = []
        missing: set[int] = set()
        for start in range(0, len(texts), QUERY_CHUNK):
            chunk = texts[start:start + QUERY_CHUNK]
            queries = SparseQueries.from_bags([Counter(self.analyzer.analyze(t)) for t in chunk])
            terms = list(queries.vocabulary)
            found, lost = self.pool.call("frequencies", terms)
            df = np.sum([found[s] for s in sorted(found)], axis=0) if found else np.zeros(len(terms), np.int64)
            stats = CollectionStats(self.num_docs, self.sum_lengths, dict(zip(terms, np.asarray(df).tolist())))
            params = InvertedParams(self.algorithm, self.theta, self.k1, self.b, stats=stats)
            hits, lost_too = self.pool.call("search", queries, k, params, shards=sorted(found))
            out.extend(self._gather(hits, len(chunk), k))
            missing.update(lost, lost_too)
        return out, sorted(missing)

    def document(self, doc_id: str) -> Document:
        """A stored document by id (KeyError if no shard holds it), as BM25.document."""
        found = stored_documents(self, [doc_id])
        if doc_id not in found:
            raise KeyError(f"unknown document id {doc_id!r}")
        return found[doc_id]

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.update(algorithm=self.algorithm, theta=self.theta)
        config.update({key: v for key, v in (("k1", self.k1), ("b", self.b)) if v is not None})
        return config


class ShardedSparse(ShardedStage):
    """Learned sparse retrieval over a sharded impact index (all shards quantised with one scale by the build): the
    same hits and scores as `LearnedSparse` over one index. `encoder`: as LearnedSparse's (None: the recorded
    one, loaded on the driver, on `device`)."""

    kind = "sparse"

    def __init__(self, index: str | os.PathLike | ShardedIndex, encoder: Any = None, k: int = 1000, *,
                 algorithm: str = "maxscore", theta: float = 1.0, device: str | None = None, **options: Any):
        super().__init__(index, k, **options)
        from rankstack.records import check_compatible

        recorded = self.settings["metadata"]["encoder"]
        if encoder is None:
            from rankstack.encoders import encoder_from_record
            encoder = encoder_from_record(recorded, files=ShardFiles(self.pool), device=device,
                                          progress=self.progress)
        check_compatible(recorded, encoder.model_info())
        self.encoder, self.algorithm, self.theta, self.device = encoder, algorithm, theta, device
        splade = getattr(encoder, "splade", encoder)
        self.vocabulary = Vocabulary(splade.vocabulary())

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[list[Hits], list[int]]:
        todo = [i for i, t in enumerate(texts) if t.strip()]  # an empty query finds nothing, as in LearnedSparse
        out = [EMPTY] * len(texts)
        missing: set[int] = set()
        for start in range(0, len(todo), QUERY_CHUNK):  # encoded in LearnedSparse's batches
            chunk = todo[start:start + QUERY_CHUNK]
            matrix = self.encoder.encode_queries([texts[i] for i in chunk])
            queries = SparseQueries.from_matrix(matrix, self.vocabulary)
            hits, lost = self.search_prepared(queries, len(chunk), k, InvertedParams(self.algorithm, self.theta))
            for i, h in zip(chunk, hits):
                out[i] = h
            missing.update(lost)
        return out, sorted(missing)

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.update(algorithm=self.algorithm, theta=self.theta)
        if self.device is not None:
            config["device"] = self.device
        return config


class ShardedDense(ShardedStage):
    """Dense retrieval over a sharded dense index: exact (Flat) shards give the same hits and scores as `Dense` over
    one index. `encoder`: a DenseEncoder or model path, or None for the recorded model (loaded on the driver)."""

    kind = "dense"

    def __init__(self, index: str | os.PathLike | ShardedIndex, encoder: Any = None, k: int = 1000, *,
                 nprobe: int | None = None, ef_search: int | None = None, device: str | None = None,
                 **options: Any):
        super().__init__(index, k, **options)
        from rankstack.encoders import as_encoder
        from rankstack.records import check_compatible

        recorded = self.settings["encoder"]
        self._encoder_arg = os.fspath(encoder) if isinstance(encoder, (str, os.PathLike)) else None
        self.encoder = as_encoder(encoder, recorded, kind="dense", **({"device": device} if device else {}))
        if recorded:
            check_compatible(recorded, self.encoder.model_info())
        self.nprobe, self.ef_search, self.device = nprobe, ef_search, device

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[list[Hits], list[int]]:
        empty = [i for i, t in enumerate(texts) if not t or not t.strip()]
        if empty:
            raise InputError(f"empty query text (query {empty[0] + 1} of the batch): a dense encoder needs at least "
                             "one word")
        if not texts:
            return [], []
        vectors = self.encoder.encode_queries(list(texts))  # all in one call, as Dense encodes them
        return self.search_prepared(vectors, len(texts), k, DenseParams(self.nprobe, self.ef_search))

    def config(self) -> dict[str, Any]:
        config = super().config()
        if self._encoder_arg is not None:
            config["encoder"] = self._encoder_arg
        config.update({key: getattr(self, key) for key in ("nprobe", "ef_search", "device")
                       if getattr(self, key) is not None})
        return config


class ShardFiles:
    """The files an index keeps beside its encoder's record (`read_file(name)`), read from shard 0's server (every
    shard of a build keeps the same ones): what rebuilding an inference-free encoder from the record needs."""

    def __init__(self, pool: ShardPool):
        self.pool = pool

    def read_file(self, name: str) -> bytes | None:
        found, missing = self.pool.call("read_file", name, shards=[0])
        if missing:
            raise InputError("the files of shard 0 cannot be read: it does not answer")
        return found[0]


def stored_documents(stage: ShardedStage, doc_ids: Sequence[str]) -> dict[str, Document]:
    """The stored documents of those of `doc_ids` that some shard holds, asked of every shard in one round."""
    found, missing = stage.pool.call("stored", list(doc_ids))
    if missing:
        raise InputError(f"the documents of shards {missing} cannot be read: they do not answer")
    out = {}
    for part in found.values():
        for doc_id, stored in part.items():
            fields = orjson.loads(stored)
            out[doc_id] = Document(doc_id, fields.get("text") or "", fields.get("title") or "")
    return out


class ShardTexts:
    """Document texts (title + text) read from the shards' stored documents, for rerankers (the Texts protocol)."""

    def __init__(self, stage: ShardedStage):
        self.stage = stage
        self.source = None

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        stored = stored_documents(self.stage, doc_ids)
        missing = next((d for d in doc_ids if d not in stored), None)
        if missing is not None:
            raise InputError(f"document {missing!r} is not in the sharded index {self.stage.sharded.path}")
        return [stored[d].contents for d in doc_ids]

    def identity(self) -> list:
        return self.stage.identity()

    def __repr__(self) -> str:
        return f"ShardTexts({self.stage!r})"


def open_sharded(path: str | os.PathLike | Path, **options: Any) -> ShardedStage:
    """The sharded first stage for the kind of sharded index at `path`."""
    kind = ShardedIndex(path).kind
    return {"bm25": ShardedBM25, "sparse": ShardedSparse, "dense": ShardedDense}[kind](path, **options)
