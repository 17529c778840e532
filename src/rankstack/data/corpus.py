"""Document collections, streamed from disk one document at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from rankstack.data.files import PathLike, json_lines, open_text, require_str, tsv_rows
from rankstack.errors import InputError


class Document(NamedTuple):
    id: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """Title and text joined, as Anserini's default `contents` field."""
        return f"{self.title} {self.text}" if self.title else self.text


class Corpus:
    """A re-iterable stream of Documents read from a file, never held in memory as a whole.

    Formats: ``jsonl`` (BEIR's corpus.jsonl[.gz]: ``_id``/``id``, ``title``, ``text``/``contents``) and
    ``tsv`` (``id<TAB>text`` or ``id<TAB>title<TAB>text``). ``locate=True`` iteration also yields
    a "file, line N" location for error messages.
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
            yield line, Document(doc_id, text, title)

    def _tsv(self) -> Iterator[tuple[int, Document]]:
        for line, cols in tsv_rows(self.path, min_columns=2):
            if len(cols) >= 3:
                yield line, Document(cols[0], "\t".join(cols[2:]), cols[1])
            else:
                yield line, Document(cols[0], cols[1])

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

    with open_text(path, "w") as f:
        for doc in documents:
            f.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
