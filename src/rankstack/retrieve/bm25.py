"""BM25 first stage: an Analyzer plus an inverted index in BM25 mode."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable

import orjson
from rankstack.progress import progress_bar

from rankstack.data.corpus import Corpus, Document, contents
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import IncompatibleIndexError, InputError
from rankstack.gc_pause import gc_paused
from rankstack.index.inverted import IndexWriter, InvertedIndex
from rankstack.index.search import InvertedParams
from rankstack.index.commit import refuse_existing
from rankstack.pipeline.stage import Stage, check_one
from rankstack.text.analyzer import Analyzer

QUERY_CHUNK = 1024  # queries per batch between progress-bar updates


INDEX_BATCH = 4096  # documents analysed together


def index_documents(writer: IndexWriter, corpus: Corpus | Iterable[Document], analyzer: Analyzer,
                    progress: bool | None = None, workers: int | None = None) -> int:
    """Analyze and add documents (title + text, as Anserini's `contents`); return how many. `workers` > 1 analyses
    and inverts in that many worker processes (rankstack.retrieve.parallel)."""
    if workers is not None and workers > 1:
        from rankstack.retrieve.parallel import index_in_parallel
        return index_in_parallel(writer, corpus, analyzer, workers, progress)
    count = 0
    with progress_bar(progress, desc="indexing", unit=" docs") as bar, gc_paused():
        for batch in batches(located(corpus), INDEX_BATCH):
            writer.add_batch(**analyze_documents(Columns.of(batch), analyzer, writer.settings["store"]))
            count += len(batch)
            bar.update(len(batch))
    return count


def located(corpus: Corpus | Iterable[Document]) -> Iterable[tuple[str, Document]]:
    """(location, document) pairs: a corpus file's "file, line N", else ""."""
    return corpus.located() if isinstance(corpus, Corpus) else (("", doc) for doc in corpus)


@dataclass
class Columns:
    """Documents as four lists: what `analyze_documents` reads, and cheap to send to a worker process (a list of
    Documents pickles several times slower)."""

    locations: list[str]
    ids: list[str]
    titles: list[str]
    texts: list[str]

    @classmethod
    def of(cls, pairs: list[tuple[str, Document]]) -> "Columns":
        """The columns of (location, document) pairs."""
        return cls([loc for loc, _ in pairs], [d.id for _, d in pairs], [d.title for _, d in pairs],
                   [d.text for _, d in pairs])

    def __len__(self) -> int:
        return len(self.ids)

    def slices(self, size: int) -> Iterable["Columns"]:
        for start in range(0, len(self), size):
            end = start + size
            yield Columns(self.locations[start:end], self.ids[start:end], self.titles[start:end],
                          self.texts[start:end])


def analyze_documents(docs: Columns, analyzer: Analyzer, store: bool) -> dict[str, Any]:
    """What `add_batch` takes for documents, as keyword arguments: ids, analysed terms (the analyzer's terms and
    each token's code), term counts, stored documents (JSON, when `store`), locations."""
    batch = analyzer.analyze_batch(list(map(contents, docs.titles, docs.texts)))
    stored = [orjson.dumps({"title": title, "text": text}).decode() for title, text in zip(docs.titles, docs.texts)
              ] if store else None
    return {"doc_ids": docs.ids, "terms": batch.terms, "codes": batch.codes, "counts": batch.counts,
            "stored": stored, "locations": docs.locations}


def batches(items: Iterable, size: int) -> Iterable[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def bm25_settings(analyzer: Analyzer, k1: float = 0.9, b: float = 0.4, length_norm: str = "lucene",
                  store: bool = True, reorder: bool = False) -> dict[str, Any]:
    """The settings of a new BM25 index (what its manifest records)."""
    if length_norm not in ("lucene", "exact"):
        raise InputError(f"length_norm must be 'lucene' or 'exact', got {length_norm!r}")
    return {"mode": "bm25", "k1": k1, "b": b, "length_norm": length_norm, "store": store, "reorder": reorder,
            "metadata": {"analyzer": analyzer.config(), "fields": "title + text"}}


def _check_workers(workers: Any) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}")


class BM25(Stage):
    """Lucene's BM25 over an on-disk inverted index.

    >>> bm25 = BM25.build(corpus, "indexes/scifact")        # or BM25("indexes/scifact")
    >>> run = bm25(queries)                                   # top `k` hits per query
    >>> BM25("indexes/scifact", k1=1.2, b=0.75)              # other BM25 parameters, same index

    `k1` and `b` default to those the index was built with; any others may be chosen per stage (the index
    stores document lengths, not norms), as Pyserini's `set_bm25`.
    """

    first_stage = True

    def __init__(self, index: str | Path | InvertedIndex, k: int = 1000, algorithm: str = "maxscore",
                 theta: float = 1.0, threads: int | None = None, progress: bool | None = None,
                 k1: float | None = None, b: float | None = None):
        self.index = index if isinstance(index, InvertedIndex) else InvertedIndex(index)
        if self.index.mode != "bm25":
            raise IncompatibleIndexError(f"{self.index.path} is an {self.index.mode!r} index, not a BM25 index")
        self.analyzer = Analyzer.from_config(self.index.settings["metadata"]["analyzer"])
        if (k1 is not None and not k1 >= 0) or (b is not None and not 0 <= b <= 1):
            raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k, self.algorithm, self.theta, self.threads, self.progress = k, algorithm, theta, threads, progress
        self.k1, self.b = k1, b

    @property
    def params(self) -> InvertedParams:
        """This stage's knobs, as the index takes them (made again only when one changes)."""
        knobs = (self.algorithm, self.theta, self.k1, self.b, self.threads)
        made = self.__dict__.get("_params")
        if made is None or made[0] != knobs:
            made = self._params = (knobs, InvertedParams(*knobs))
        return made[1]

    @classmethod
    def build(cls, corpus: Corpus | Iterable[Document] | str | Path, index_path: str | Path,
              analyzer: Analyzer | None = None, k1: float = 0.9, b: float = 0.4, length_norm: str = "lucene",
              store: bool = True, overwrite: bool = False, progress: bool | None = None, workers: int | None = None,
              reorder: bool = False, **search_options) -> "BM25":
        """Index a corpus (a Corpus, an iterable of Documents, or a corpus file path) into a new directory.

        Defaults follow Anserini: k1=0.9, b=0.4, Lucene's lossy document-length encoding
        (`length_norm="lucene"`; "exact" uses true lengths), Porter stemming, Lucene's stopwords.
        `workers` > 1: analysis and inversion in that many worker processes (the same index, in more segments).
        `reorder`: each segment's documents renumbered by recursive graph bisection when it is written or merged
        (`rankstack.index.reorder`): the same scores, tied ones perhaps in another order; a build several times
        slower, for more skipping on some algorithms (README: what it gained).
        """
        refuse_existing(index_path, overwrite, "BM25")
        _check_workers(workers)
        if isinstance(corpus, (str, Path)):
            corpus = Corpus(corpus)
        analyzer = analyzer or Analyzer()
        settings = bm25_settings(analyzer, k1, b, length_norm, store, reorder)
        with IndexWriter(index_path, settings, overwrite=overwrite) as writer:
            index_documents(writer, corpus, analyzer, progress, workers)
        return cls(index_path, progress=progress, **search_options)

    def add(self, documents: Corpus | Iterable[Document], workers: int | None = None) -> int:
        """Add (or replace, by id) documents and commit; this stage then searches the new snapshot. `workers` > 1:
        analysis and inversion in worker processes."""
        _check_workers(workers)
        with IndexWriter(self.index.path) as writer:
            count = index_documents(writer, documents, self.analyzer, self.progress, workers)
        self.index = InvertedIndex(self.index.path)
        return count

    def delete(self, doc_ids: Iterable[str]) -> None:
        with IndexWriter(self.index.path) as writer:
            writer.delete(doc_ids)
        self.index = InvertedIndex(self.index.path)

    def query_terms(self, text: str) -> Counter:
        """The analysed query as term -> count."""
        return Counter(self.analyzer.analyze(text))

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """`Stage.search`: one query's top `k` [(doc id, score), ...], searched at depth `k` straight on the
        index (no Run, no progress bar: the per-query path of a service)."""
        k = check_one(query, k)
        hits = self.index.search([self.query_terms(query)], k, self.params)[0]
        return list(zip(self.index.doc_ids.take(hits.docnos), hits.scores.tolist()))

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        index = self.index  # one snapshot for hits and ids, whatever a concurrent add() does
        qids = list(queries)
        results = {}
        with progress_bar(self.progress, total=len(qids), desc="BM25", unit=" queries") as bar:
            for start in range(0, len(qids), QUERY_CHUNK):
                chunk = qids[start:start + QUERY_CHUNK]
                hits = index.search([self.query_terms(queries[q]) for q in chunk], self.k, self.params)
                results.update(zip(chunk, hits))
                bar.update(len(chunk))
        return Run(results, index.doc_ids, name="BM25", presorted=True)

    def document(self, doc_id: str) -> Document:
        """A stored document by id."""
        docno = self.index.docno(doc_id)
        if docno < 0:
            raise KeyError(f"unknown document id {doc_id!r}")
        fields = json.loads(self.index.stored([docno])[0])
        return Document(doc_id, fields["text"], fields["title"])

    def config(self) -> dict[str, Any]:
        config = {"index": str(self.index.path), "k": self.k, "algorithm": self.algorithm, "theta": self.theta}
        config.update({key: value for key, value in (("k1", self.k1), ("b", self.b)) if value is not None})
        return config
