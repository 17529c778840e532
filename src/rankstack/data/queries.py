"""Queries: an ordered mapping of query id to query text."""

from __future__ import annotations

import json
import numbers
import re
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from rankstack.data.fields import check_text, require_str
from rankstack.data.files import PathLike, header_of, json_lines, read_text, tsv_rows, writing
from rankstack.errors import InputError

#: First-line column names that make a TSV queries file's first line a header, skipped when both columns match.
TSV_HEADER = header_of({"id", "_id", "qid", "query_id", "query-id", "queryid", "topic", "topic_id", "num"},
                       {"text", "query", "query_text", "querytext", "title", "question"})


class Queries(Mapping[str, str]):
    """Ordered query id -> text. Small enough to live in memory (thousands, not millions).

    Ids are non-empty strings (integers are converted); texts are strings. Neither may hold a lone surrogate
    (such as "\\ud800"): no run file or index can store it. Anything else is an InputError naming the query.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = (), name: str = "queries"):
        self._texts: dict[str, str] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for qid, text in pairs:
            self._add(qid, text)
        self.name = name

    def _add(self, qid, text, path: PathLike | None = None, line: int | None = None) -> None:
        """Check and add one query; errors name the file and line when given."""
        try:
            if isinstance(qid, numbers.Integral) and not isinstance(qid, bool):
                qid = str(qid)
            qid = check_text(qid, "query id")
            if not qid:
                raise InputError("query id is empty")
            text = check_text(text, f"text of query {qid!r}")
        except InputError as e:
            raise InputError(str(e), path, line) from None
        if qid in self._texts:
            raise InputError(f"duplicate query id {qid!r}", path, line)
        self._texts[qid] = text

    def __getitem__(self, qid: str) -> str:
        try:
            return self._texts[qid]
        except KeyError:
            raise KeyError(f"unknown query id {qid!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def subset(self, qids: Iterable[str]) -> "Queries":
        """The queries whose ids are in `qids`, in this object's order."""
        keep = set(qids)
        return Queries(((q, t) for q, t in self._texts.items() if q in keep), name=self.name)

    def __repr__(self) -> str:
        return f"Queries({self.name!r}, {len(self)} queries)"

    # --- readers and writers -------------------------------------------------------------------

    @classmethod
    def read(cls, path: PathLike, format: str | None = None) -> "Queries":
        """Read queries from BEIR/plain JSONL (``_id``/``id``, ``text``/``query``), TSV (``id<TAB>text``, or the
        id and the text separated by spaces on a line without a tab) or TREC topics (``<top><num>... <title>...``).
        A TSV header line is skipped where its two columns are names such as ``qid<TAB>query`` or
        ``id<TAB>text`` (see TSV_HEADER). Empty query texts are kept with a warning; they retrieve nothing."""
        path = Path(path)
        format = format or _guess_format(path)
        readers = {"jsonl": _read_jsonl, "tsv": _read_tsv, "trec": _read_trec_topics}
        if format not in readers:
            raise InputError(f"unknown queries format {format!r} (expected one of {sorted(readers)})", path)
        queries = cls(name=path.name)
        for line, qid, text in readers[format](path):
            queries._add(qid, text, path, line)
            if not text.strip():
                warnings.warn(f"{path}, line {line}: query {qid!r} is empty; it will retrieve nothing", stacklevel=2)
        return queries

    def write_jsonl(self, path: PathLike) -> None:
        with writing(path) as f:
            for qid, text in self._texts.items():
                f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")

    def write_tsv(self, path: PathLike) -> None:
        with writing(path) as f:
            for qid, text in self._texts.items():
                if "\t" in text or "\n" in text:
                    text = " ".join(text.split())
                f.write(f"{qid}\t{text}\n")


def _guess_format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    return "trec" if "<top>" in read_text(path, 4096).lower() else "tsv"


def _read_jsonl(path: Path):
    for line, obj in json_lines(path):
        qid = require_str(obj, "_id", path, line, alternatives=("id", "qid", "query_id"))
        text = require_str(obj, "text", path, line, alternatives=("query", "title"))
        yield line, qid, text


def _read_tsv(path: Path):
    for line, cols in tsv_rows(path, min_columns=1, is_header=TSV_HEADER):
        yield line, cols[0].strip(), " ".join(cols[1:]).strip()


_TOPIC = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+)", re.I)
_TITLE = re.compile(r"<title>\s*(?:Topic:)?(.*?)(?=<\w+>|$)", re.S | re.I)


def _read_trec_topics(path: Path):
    content = read_text(path)
    found = False
    for match in _TOPIC.finditer(content):
        found = True
        line = content.count("\n", 0, match.start()) + 1
        num, title = _NUM.search(match.group(1)), _TITLE.search(match.group(1))
        if num is None or title is None:
            raise InputError("TREC topic without <num> or <title>", path, line)
        yield line, num.group(1).strip(), " ".join(title.group(1).split())
    if not found:
        raise InputError("no <top>...</top> topic found in TREC topics file", path)
