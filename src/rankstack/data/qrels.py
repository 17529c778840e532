"""Relevance judgments: query id -> document id -> graded relevance."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from rankstack.data.files import PathLike, tsv_rows, writing
from rankstack.errors import InputError

#: The largest relevance grade magnitude: trec_eval and pytrec_eval hold grades in C integers.
MAX_GRADE = 2**31 - 1

_QUERY_ID_NAMES = {"query-id", "query_id", "queryid", "qid", "query", "topic", "topic_id"}


def grade(value: object) -> int:
    """A relevance grade as an int: an integer, or a number or numeral with an integral value ("2", "1.0");
    anything else (``1.5``, ``inf``, ``nan``, ``1e400``, grades beyond +-MAX_GRADE, text) is an InputError."""
    number: object = value
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise InputError(f"relevance {value!r} is not a number") from None
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise InputError(f"relevance {value!r} is not a number")
    if not isinstance(number, numbers.Integral):
        if not math.isfinite(number) or not float(number).is_integer():
            raise InputError(f"relevance {value!r} is not an integer; grades are integers, as trec_eval reads them")
    if abs(number) > MAX_GRADE:
        raise InputError(f"relevance {value!r} is out of range (at most {MAX_GRADE:,} in magnitude)")
    return int(number)


class Qrels(Mapping[str, dict[str, int]]):
    """Judgments per query. Read from BEIR's qrels TSV (with header) or TREC qrels (``qid iter docid rel``).
    Grades are integers (see ``grade``)."""

    def __init__(self, judgments: Mapping[str, Mapping[str, int]] | None = None, name: str = "qrels"):
        self._qrels: dict[str, dict[str, int]] = {}
        for q, docs in (judgments or {}).items():
            try:
                self._qrels[str(q)] = {str(d): grade(r) for d, r in docs.items()}
            except InputError as e:
                raise InputError(f"query {str(q)!r}: {e}") from None
        self.name = name

    def __getitem__(self, qid: str) -> dict[str, int]:
        return self._qrels[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._qrels)

    def __len__(self) -> int:
        return len(self._qrels)

    def num_judgments(self) -> int:
        return sum(len(d) for d in self._qrels.values())

    def subset(self, qids: Iterable[str]) -> "Qrels":
        keep = set(qids)
        return Qrels({q: d for q, d in self._qrels.items() if q in keep}, name=self.name)

    def __repr__(self) -> str:
        return f"Qrels({self.name!r}, {len(self)} queries, {self.num_judgments()} judgments)"

    @classmethod
    def read(cls, path: PathLike) -> "Qrels":
        """Read TREC qrels (4 columns ``qid iter docid rel``) or BEIR qrels (3 columns, header
        ``query-id corpus-id score``; a first line is a header where it starts with a name such as ``query-id``
        and ends with no number). A document judged twice for one query is an error, and so is a TREC run
        file (6 columns ``qid Q0 docid rank score tag``) given in place of qrels."""
        path = Path(path)
        qrels = cls(name=path.name)
        for line, cols in tsv_rows(path, min_columns=3, is_header=_is_header):
            if len(cols) == 4:
                qid, docid, rel = cols[0], cols[2], cols[3]
            elif len(cols) == 3:
                qid, docid, rel = cols
            else:
                raise InputError(_wrong_columns(cols), path, line)
            try:
                value = grade(rel.strip())
            except InputError as e:
                raise InputError(str(e), path, line) from None
            docs = qrels._qrels.setdefault(qid.strip(), {})
            docid = docid.strip()
            if docid in docs and docs[docid] != value:
                raise InputError(f"document {docid!r} judged twice for query {qid!r} "
                                 f"({docs[docid]} and {value})", path, line)
            docs[docid] = value
        if not qrels._qrels:
            raise InputError("no judgments found", path)
        return qrels

    def write_trec(self, path: PathLike) -> None:
        with writing(path) as f:
            for qid, docs in self._qrels.items():
                for docid, rel in docs.items():
                    f.write(f"{qid} 0 {docid} {rel}\n")


def _is_header(cols: list[str]) -> bool:
    return cols[0].strip().lower() in _QUERY_ID_NAMES and not _is_number(cols[-1])


def _wrong_columns(cols: list[str]) -> str:
    """Why a qrels line with neither 3 nor 4 columns was refused, naming a run file where the line is one."""
    expected = "expected 4 columns 'qid iter docid rel' (TREC) or 3 'query-id corpus-id score' (BEIR)"
    if len(cols) == 6 and _is_number(cols[3]) and _is_number(cols[4]):
        return f"this is a line of a TREC run file ('qid Q0 docid rank score tag'), not of qrels: {expected}"
    return f"{expected}, found {len(cols)}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
