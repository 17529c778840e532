"""Learned sparse first stage (SPLADE and inference-free encoders) over an impact-mode inverted index.

Documents are encoded once into {token: weight} vectors and written, quantised to `impact_bits` bits with a
recorded scale, into rankstack's inverted index; the encoder's `model_info()` is recorded with it, so that
an index is never queried with another model. Queries are encoded at search time and searched with one of:

* "maxscore", "bmw", "bmp", "exhaustive": the inverted index, exact (`theta` > 1 trades recall for speed);
* "seismic": the approximate Seismic index (rankstack.index.seismic) kept beside the inverted one, built by
  `build_approximate()`; knobs `query_cut` and `heap_factor`;
* "matmul": every document scored by a sparse matrix product (rankstack.index.sparse_gpu), on `device`.

    >>> splade = LearnedSparse.build(corpus, "indexes/scifact-splade", SpladeEncoder("naver/splade-v3"))
    >>> run = splade(queries)                                  # top `k` per query, exact
    >>> LearnedSparse("indexes/scifact-splade")               # reopen: the encoder comes from the index's record
    >>> fast = LearnedSparse("indexes/scifact-splade", algorithm="seismic", heap_factor=0.9)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import orjson
import scipy.sparse as sp
from rankstack.progress import progress_bar

from rankstack.data.corpus import Corpus, Document
from rankstack.data.queries import Queries
from rankstack.data.run import Hits, Run
from rankstack.encoders.base import encoder_from_record
from rankstack.records import check_compatible
from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.index.inverted import ALGORITHMS as EXACT_ALGORITHMS
from rankstack.index.inverted import IndexWriter, InvertedIndex
from rankstack.index.search import InvertedParams, SeismicParams, SparseQueries, Vocabulary
from rankstack.index.commit import WriterLock, refuse_existing
from rankstack.pipeline.stage import Stage

ALGORITHMS = (*EXACT_ALGORITHMS, "seismic", "matmul")
APPROXIMATE_DIR = "seismic"   # the Seismic index, inside the inverted index's directory
QUERY_CHUNK = 1024            # queries encoded and searched together


class LearnedSparse(Stage):
    """Learned sparse retrieval: an encoder plus an impact-mode index (see the module docstring).

    `encoder`: a SpladeEncoder / InferenceFreeSparseEncoder (checked against the index's record:
    IncompatibleIndexError if it differs), or None to load the recorded one on first use (on `device`).
    """

    first_stage = True

    def __init__(self, index: str | Path | InvertedIndex, encoder: Any = None, k: int = 1000,
                 algorithm: str = "maxscore", theta: float = 1.0, query_cut: int | None = 20,
                 heap_factor: float = 0.8, device: str | None = None, threads: int | None = None,
                 progress: bool | None = None):
        if algorithm not in ALGORITHMS:
            raise InputError(f"unknown algorithm {algorithm!r} (expected one of {', '.join(ALGORITHMS)})")
        self.index = index if isinstance(index, InvertedIndex) else InvertedIndex(index)
        self.recorded = self.index.settings.get("metadata", {}).get("encoder")
        if self.index.mode != "impact" or not self.recorded:
            raise IncompatibleIndexError(f"{self.index.path} is not a learned sparse index (built by "
                                         "LearnedSparse.build)")
        if encoder is not None:
            check_compatible(self.recorded, encoder.model_info())
        self._encoder = encoder
        self.k, self.algorithm, self.theta = k, algorithm, theta
        self.query_cut, self.heap_factor, self.device = query_cut, heap_factor, device
        self.threads, self.progress = threads, progress
        self._vocab: Vocabulary | None = None
        self._backend: Any = None
        if algorithm == "seismic":
            self._backend = self._open_seismic()

    # --- building and updating -----------------------------------------------------------------

    @classmethod
    def build(cls, corpus: Corpus | Iterable[Document] | str | Path, index_path: str | Path, encoder: Any, *,
              impact_bits: int = 8, impact_scale: float | None = None, store: bool = True, overwrite: bool = False,
              shards: str | Path | None = None, shard_size: int = 10_000, reorder: bool = False,
              progress: bool | None = None, **search_options) -> "LearnedSparse":
        """Encode a corpus's documents (title + text) and index them into a new directory.

        Weights are quantised to `impact_bits` (8 or 16) bits; the scale is `impact_scale`, by default the
        largest weight of the corpus over the top quantum (documents added later that exceed it are clipped).
        `shards`: encode resumably into this folder first (rankstack.encoders.encode_corpus_to_shards); a rerun
        after a crash skips the shards already written. `reorder`: documents renumbered by recursive graph
        bisection in each segment (as `BM25.build`'s): the same scores, and documents that share terms close
        together, which Block-Max Pruning (`algorithm="bmp"`) needs to pay. With `algorithm="seismic"` in
        `search_options` the approximate index is built too (default parameters; call `build_approximate` for
        others).
        """
        refuse_existing(index_path, overwrite, "LearnedSparse")
        if impact_bits not in (8, 16):
            raise InputError(f"impact_bits must be 8 or 16, got {impact_bits!r}")
        if search_options.get("algorithm", "maxscore") not in ALGORITHMS:
            raise InputError(f"unknown algorithm {search_options['algorithm']!r} (expected one of "
                             f"{', '.join(ALGORITHMS)})")
        if isinstance(corpus, (str, Path)):
            corpus = Corpus(corpus)
        docs = corpus if isinstance(corpus, Corpus) else list(corpus)
        vocab = _vocabulary(encoder)
        matrices = _encode_documents(encoder, docs, shards, shard_size)
        if impact_scale is None:
            top = max((float(m.data.max()) for m in matrices() if m.nnz), default=1.0)
            impact_scale = top / (2 ** impact_bits - 1)
        if not impact_scale > 0:
            raise InputError(f"impact_scale must be > 0, got {impact_scale}")
        settings = {"mode": "impact", "impact_bits": impact_bits, "impact_scale": impact_scale, "store": store,
                    "reorder": reorder, "metadata": {"encoder": encoder.model_info(), "terms": "tokens", "fields": "title + text"}}
        with IndexWriter(index_path, settings, overwrite=overwrite) as writer:
            _save_index_files(encoder, writer)
            _add_encoded(writer, docs, matrices(), vocab, store, progress)
        algorithm = search_options.pop("algorithm", "maxscore")
        stage = cls(index_path, encoder, progress=progress, **search_options)
        if algorithm == "seismic":
            stage.build_approximate()
        return cls(index_path, encoder, progress=progress, algorithm=algorithm, **search_options)

    def add(self, documents: Corpus | Iterable[Document]) -> int:
        """Encode and add (or replace, by id) documents, commit, and rebuild the approximate index if there is one."""
        docs = documents if isinstance(documents, Corpus) else list(documents)
        matrices = _encode_documents(self.encoder, docs, None, 0)
        with IndexWriter(self.index.path) as writer:
            count = _add_encoded(writer, docs, matrices(), self.vocabulary, writer.settings["store"], self.progress)
        self._reopen()
        return count

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Delete documents by id (unknown ids are ignored), commit, and rebuild the approximate index if any."""
        with IndexWriter(self.index.path) as writer:
            writer.delete(doc_ids)
        self._reopen()

    def _reopen(self) -> None:
        self.index = InvertedIndex(self.index.path)
        self._backend = None
        seismic = self.index.path / APPROXIMATE_DIR
        if (seismic / "manifest.json").exists():
            from rankstack.index.seismic import SeismicIndex
            self.build_approximate(**SeismicIndex(seismic).params)
        if self.algorithm == "seismic":
            self._backend = self._open_seismic()

    def build_approximate(self, *, n_postings: int | None = 3500, centroid_fraction: float = 0.1,
                          summary_energy: float = 0.4, small_list: int = 16, value_bits: int = 16,
                          seed: int = 0) -> None:
        """(Re)build the Seismic index of the current snapshot (see rankstack.index.seismic for the parameters)."""
        from rankstack.index.seismic import SeismicIndex

        lock = WriterLock(self.index.path)
        lock.acquire()  # no writer may commit while the approximate index is built from this snapshot
        try:
            index = InvertedIndex(self.index.path)
            SeismicIndex.build(index.path / APPROXIMATE_DIR, document_matrix(index, self.vocabulary),
                               n_postings=n_postings, centroid_fraction=centroid_fraction,
                               summary_energy=summary_energy, small_list=small_list, value_bits=value_bits,
                               seed=seed, metadata={"commit": index.commit_id}, threads=self.threads)
        finally:
            lock.release()
        self.index = index
        self._backend = self._open_seismic() if self.algorithm == "seismic" else None

    # --- encoder and backends ------------------------------------------------------------------

    @property
    def encoder(self) -> Any:
        """The query/document encoder (loaded from the index's record on first use when none was given)."""
        if self._encoder is None:
            self._encoder = encoder_from_record(self.recorded, files=self.index, device=self.device,
                                                progress=self.progress)
        return self._encoder

    @property
    def vocabulary(self) -> Vocabulary:
        """The encoder's token strings, which name the index's terms."""
        if self._vocab is None:
            self._vocab = Vocabulary(_vocabulary(self.encoder))
        return self._vocab

    def _open_seismic(self) -> Any:
        from rankstack.index.seismic import SeismicIndex

        path = self.index.path / APPROXIMATE_DIR
        if not (path / "manifest.json").exists():
            raise IndexFormatError(f"{self.index.path} has no approximate (Seismic) index: call "
                                   "build_approximate() on a LearnedSparse stage of it first")
        seismic = SeismicIndex(path)
        if seismic.metadata.get("commit") != self.index.commit_id:
            raise IncompatibleIndexError(f"the Seismic index of {self.index.path} was built from another commit of "
                                         "the index: call build_approximate()")
        return seismic

    def _matmul(self) -> Any:
        if self._backend is None:
            from rankstack.index.sparse_gpu import SparseMatmulScorer
            self._backend = SparseMatmulScorer(document_matrix(self.index, self.vocabulary), device=self.device)
        return self._backend

    # --- search --------------------------------------------------------------------------------

    def search_vectors(self, queries: sp.csr_matrix, k: int | None = None) -> list[Hits]:
        """Top-k (global doc numbers, scores) of encoded queries (CSR rows [queries, vocabulary])."""
        return self._search(self.index, self._searcher(), queries, k or self.k)

    def _searcher(self) -> Any:
        """What answers this stage's queries: the inverted index, or its Seismic or matmul backend."""
        return self._matmul() if self.algorithm == "matmul" else self._backend if self.algorithm == "seismic" \
            else self.index

    def _search(self, index: InvertedIndex, searcher: Any, queries: sp.csr_matrix, k: int) -> list[Hits]:
        batch = SparseQueries.from_matrix(queries, self.vocabulary)
        if searcher is index:
            return index.search(batch, k, InvertedParams(self.algorithm, self.theta, threads=self.threads))
        if self.algorithm == "seismic":
            return searcher.search(batch, k, SeismicParams(self.query_cut, self.heap_factor, self.threads))
        return searcher.search(batch, k)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        index, searcher = self.index, self._searcher()  # one snapshot, whatever a concurrent add() does
        qids = list(queries)
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        results = {q: empty for q in qids}  # an empty query finds nothing, as in BM25
        todo = [q for q in qids if queries[q].strip()]
        with progress_bar(self.progress, total=len(todo), desc="LearnedSparse", unit=" queries") as bar:
            for start in range(0, len(todo), QUERY_CHUNK):
                chunk = todo[start:start + QUERY_CHUNK]
                matrix = self.encoder.encode_queries([queries[q] for q in chunk])
                results.update(zip(chunk, self._search(index, searcher, matrix, self.k)))
                bar.update(len(chunk))
        return Run(results, index.doc_ids, name="LearnedSparse", presorted=True)

    def config(self) -> dict[str, Any]:
        config = {"index": str(self.index.path), "k": self.k, "algorithm": self.algorithm}
        if self.algorithm in EXACT_ALGORITHMS:
            config["theta"] = self.theta
        elif self.algorithm == "seismic":
            config.update(query_cut=self.query_cut, heap_factor=self.heap_factor)
        if self.device is not None:
            config["device"] = self.device
        return config


# ---------------------------------------------------------------------------------------------
# helpers


def document_matrix(index: InvertedIndex, vocabulary: list[str]) -> sp.csr_matrix:
    """The index's live documents as a CSR matrix [global doc numbers, vocabulary] of dequantised weights
    (deleted documents: empty rows)."""
    column = {t: i for i, t in enumerate(vocabulary)}
    scale = index.settings["impact_scale"] or 1.0
    rows, cols, vals = [], [], []
    for s, seg in enumerate(index.segments):
        term_offsets, docnos, values = seg.decode_all()
        terms = list(seg.terms)
        missing = [t for t in terms if t not in column]
        if missing:
            raise IncompatibleIndexError(f"index terms {missing[:3]} are not in the encoder's vocabulary")
        term_cols = np.repeat(np.array([column[t] for t in terms], dtype=np.int64), np.diff(term_offsets))
        keep = np.ones(len(docnos), bool) if index.live[s] is None else index.live[s][docnos]
        rows.append(docnos[keep].astype(np.int64) + index.bases[s])
        cols.append(term_cols[keep])
        vals.append(values[keep].astype(np.float32) * np.float32(scale))
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(index.num_docs, len(vocabulary)))


def _vocabulary(encoder: Any) -> list[str]:
    splade = getattr(encoder, "splade", encoder)  # an inference-free encoder's document side
    vocab = splade.vocabulary()
    if len(set(vocab)) != len(vocab):
        raise InputError("the encoder's vocabulary has duplicate token strings; it cannot name index terms")
    return vocab


def _save_index_files(encoder: Any, writer: IndexWriter) -> None:
    """Keep the files an encoder needs beside its record (an inference-free encoder's query weights) with the
    index, committed with its documents."""
    for name, data in getattr(encoder, "index_files", dict)().items():
        writer.set_file(name, data)


def _encode_documents(encoder: Any, docs: Corpus | list[Document], shards: str | Path | None,
                      shard_size: int) -> Any:
    """Encode the non-empty documents; return a function yielding their CSR matrices in order (re-iterable)."""
    texts = (d.contents for d in docs if d.contents.strip())
    if shards is None:
        text_list = list(texts)
        matrix = encoder.encode_documents(text_list) if text_list else sp.csr_matrix((0, 1), dtype=np.float32)
        return lambda: iter([matrix])
    from rankstack.encoders.batching import encode_corpus_to_shards
    paths = encode_corpus_to_shards(encoder, texts, shards, shard_size)

    def load() -> Iterator[sp.csr_matrix]:
        for path in paths:
            with np.load(path) as z:
                yield sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return load


def _add_encoded(writer: IndexWriter, docs: Corpus | list[Document], matrices: Iterator[sp.csr_matrix],
                 vocab: list[str], store: bool, progress: bool | None) -> int:
    """Add each document with its row of the encoded matrices (empty documents: no terms)."""
    located = docs.located() if isinstance(docs, Corpus) else (("", d) for d in docs)
    rows = _rows(matrices)
    count = 0
    with progress_bar(progress, desc="indexing", unit=" docs") as bar:
        for location, doc in located:
            terms = {}
            if doc.contents.strip():
                indices, weights = next(rows)
                terms = dict(zip([vocab[j] for j in indices.tolist()], weights.tolist()))
            stored = orjson.dumps({"title": doc.title, "text": doc.text}).decode() if store else None
            writer.add(doc.id, terms, stored, location)
            count += 1
            bar.update()
    return count


def _rows(matrices: Iterator[sp.csr_matrix]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for m in matrices:
        ptr = m.indptr
        for i in range(m.shape[0]):
            yield m.indices[ptr[i]:ptr[i + 1]], m.data[ptr[i]:ptr[i + 1]]


__all__ = ["LearnedSparse", "document_matrix"]
