"""Where rerankers get document text: a small protocol, with an in-memory corpus and an index's stored documents.

A reranker sees a run's external doc ids and asks `texts(doc_ids)` for the document text of each, in order
(title + " " + text, as `Document.contents`). An unknown id is an InputError naming it.

In a reranker's repr, a source stands as the path that rebuilds it (a corpus file, an index directory:
`texts_from`); a corpus given as documents in memory stands as an `in_memory(...)` marker (its size and content
hash), which a pipeline expression cannot rebuild: parse refuses it, saying to name a corpus file or an index,
or to pass the source among parse's names.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import orjson

from rankstack.data.corpus import Corpus, Document
from rankstack.data.files import PathLike
from rankstack.errors import InputError, RankstackError
from rankstack.records import InMemory


@runtime_checkable
class Texts(Protocol):
    """Document texts by external id. A `source` attribute (the path `texts_from` rebuilds it from, or an
    InMemory marker) stands for it in a reranker's repr (`texts_config`)."""

    def texts(self, doc_ids: Sequence[str]) -> list[str]: ...


class CorpusTexts:
    """The texts of a small corpus held in memory (e.g. TREC DL 2019's 4,297 reranking passages).

    `corpus`: a Corpus, a corpus file path (BEIR JSONL or TSV) or an iterable of Documents.
    """

    def __init__(self, corpus: Corpus | PathLike | Iterable[Document]):
        if isinstance(corpus, (str, os.PathLike)):
            corpus = Corpus(corpus)
        self.source = str(corpus.path) if isinstance(corpus, Corpus) else None
        self._texts = {doc.id: doc.contents for doc in corpus}
        self._identity: str | None = None
        if self.source is None:
            self.source = InMemory("corpus", len(self._texts), "sha256:" + self.identity()[:24])

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        texts = self._texts
        try:
            return [texts[i] for i in doc_ids]
        except KeyError as e:
            where = self.source if isinstance(self.source, str) else "(in memory)"
            raise InputError(f"document {e.args[0]!r} is not in the corpus {where}") from None

    def __len__(self) -> int:
        return len(self._texts)

    def identity(self) -> str:
        """A digest of the texts held (caches key on it)."""
        if self._identity is None:
            digest = hashlib.sha256()
            for doc_id, text in self._texts.items():
                digest.update(f"{len(doc_id)}:{doc_id}{len(text)}:{text}".encode("utf-8", "surrogatepass"))
            self._identity = digest.hexdigest()[:32]
        return self._identity

    def __repr__(self) -> str:
        return f"CorpusTexts({self.source!r})"


class IndexTexts:
    """The stored documents of an inverted index, read by id in batches of `batch_size`.

    `index`: a BM25 stage, an InvertedIndex, or an index directory. The index must store documents
    (`BM25.build(..., store=True)`, the default).
    """

    def __init__(self, index: Any, batch_size: int = 4096):
        from rankstack.index.inverted import InvertedIndex

        if isinstance(index, (str, os.PathLike)):
            index = InvertedIndex(index)
        self.index = getattr(index, "index", index)  # a BM25 stage holds its InvertedIndex as `.index`
        if not hasattr(self.index, "stored"):
            raise InputError(f"expected a BM25 stage, an InvertedIndex or an index directory, got {index!r}")
        self.source = str(self.index.path)
        self.batch_size = batch_size

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        docnos = [self.index.docno(i) for i in doc_ids]
        if -1 in docnos:
            missing = doc_ids[docnos.index(-1)]
            raise InputError(f"document {missing!r} is not in the index {self.source}")
        out: list[str] = []
        for start in range(0, len(docnos), self.batch_size):
            for stored in self.index.stored(docnos[start:start + self.batch_size]):
                fields = orjson.loads(stored)
                out.append(Document("", fields.get("text") or "", fields.get("title") or "").contents)
        return out

    def identity(self) -> str:
        """The index snapshot's commit id (caches key on it)."""
        return self.index.commit_id

    def __repr__(self) -> str:
        return f"IndexTexts({self.source!r})"


def texts_from(source: Texts | PathLike) -> Texts:
    """A Texts object as given, or built from a path: an index directory (IndexTexts) or a corpus file (CorpusTexts)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            return CorpusTexts(path)
        try:
            return IndexTexts(path)
        except RankstackError as e:
            raise InputError(f"expected a corpus file or an index directory ({e})", path) from None
    if not isinstance(source, Texts):
        raise InputError(f"expected document texts (CorpusTexts, IndexTexts, a path), got {type(source).__name__}")
    return source


def texts_config(texts: Texts | None) -> str | InMemory | None:
    """What stands for a texts source in a reranker's config and repr: its path (`texts_from` rebuilds it), an
    InMemory marker for documents held in memory, None for no source."""
    if texts is None:
        return None
    source = getattr(texts, "source", None)
    if source is None:
        return InMemory(type(texts).__name__, 0, f"id:{id(texts):x}")
    return source
