"""Document collections, streamed from disk one document at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from rankstack.data.fields import check_text, require_str
from rankstack.data.files import PathLike, json_lines, tsv_rows, writing
from rankstack.errors import InputError


class _Fields(NamedTuple):
    id: str
    text: str
    title: str = ""


class Document(_Fields):
    """A document: id, text and optional title, each a string UTF-8 can encode (a title of None means "").

    Documents built in Python are checked here, so a bad field is an InputError naming it, raised before any
    index sees the document (a few type tests for ASCII fields, one UTF-8 encoding of the others). Corpus readers
    check types themselves, with the file and line, and build Documents unchecked: text decoded from UTF-8 or
    parsed by orjson never holds a lone surrogate.
    """

    __slots__ = ()

    def __new__(cls, id: str, text: str, title: str | None = ""):
        if not (type(id) is str and type(text) is str and type(title) is str
                and id.isascii() and text.isascii() and title.isascii()):
            id, text, title = check_text(id, "document id"), check_text(text, "document text"), \
                check_text("" if title is None else title, "document title")
        return tuple.__new__(cls, (id, text, title))

    @property
    def contents(self) -> str:
        """Title and text joined, as Anserini's default `contents` field."""
        return contents(self.title, self.text)


def contents(title: str, text: str) -> str:
    """A document's title and text joined, as Anserini's default `contents` field."""
    return f"{title} {text}" if title else text


_unchecked = tuple.__new__  # a Document from fields a reader has checked


class Corpus:
    """A re-iterable stream of Documents read from a file, never held in memory as a whole.

    Formats: ``jsonl`` (BEIR's corpus.jsonl[.gz]: ``_id``/``id``, ``title``, ``text``/``contents``) and
    ``tsv`` (``id<TAB>text`` or ``id<TAB>title<TAB>text``, as MS MARCO's collection.tsv; a line without a tab
    is an error, never split on spaces). ``located()`` also yields a "file, line N" location for error messages.
    """

    def __init__(self, path: PathLike, format: str | None = None, name: str | None = None):
        self.path = Path(path)
        self.format = format or _guess_format(self.path)
        if self.format not in ("jsonl", "tsv"):
            raise InputError(f"unknown corpus format {self.format!r} (expected 'jsonl' or 'tsv')", path)
        self.name = name or self.path.name

    def __iter__(self) -> Iterator[Document]:
        for _, doc in self.located():
            yield doc

    def located(self) -> Iterator[tuple[str, Document]]:
        """Yield (location, document) pairs, the location naming the file and line."""
        rows = self._jsonl() if self.format == "jsonl" else self._tsv()
        for line, doc in rows:
            yield f"{self.path}, line {line}", doc

    def _jsonl(self) -> Iterator[tuple[int, Document]]:
        for line, obj in json_lines(self.path):
            doc_id, text, title = obj.get("_id"), obj.get("text"), obj.get("title") or ""
            if type(doc_id) is not str or type(text) is not str:  # the fast path failed: say why, or convert
                doc_id = require_str(obj, "_id", self.path, line, alternatives=("id", "docid", "doc_id"))
                text = require_str(obj, "text", self.path, line, alternatives=("contents", "body"))
            if type(title) is not str:
                raise InputError("field 'title' must be a string", self.path, line)
            yield line, _unchecked(Document, (doc_id, text, title))

    def _tsv(self) -> Iterator[tuple[int, Document]]:
        for line, cols in tsv_rows(self.path, min_columns=2, tabs=True):
            if len(cols) >= 3:
                yield line, _unchecked(Document, (cols[0], "\t".join(cols[2:]), cols[1]))
            else:
                yield line, _unchecked(Document, (cols[0], cols[1], ""))

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, format={self.format!r})"


def _guess_format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".tsv", ".txt")):
        return "tsv"
    raise InputError("cannot tell the corpus format from the file name; pass format='jsonl' or 'tsv'", path)


def write_corpus_jsonl(documents: Iterable[Document], path: PathLike) -> None:
    """Write documents in BEIR's corpus.jsonl layout (gzip when the name ends in .gz)."""
    import json

    with writing(path) as f:
        for doc in documents:
            f.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
