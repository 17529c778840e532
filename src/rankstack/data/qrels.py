"""Relevance judgments: query id -> document id -> graded relevance."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Mapping

from rankstack.data.files import PathLike, open_text, tsv_rows
from rankstack.errors import InputError


class Qrels(Mapping[str, dict[str, int]]):
    """Judgments per query. Read from BEIR's qrels TSV (with header) or TREC qrels (``qid iter docid rel``)."""

    def __init__(self, judgments: Mapping[str, Mapping[str, int]] | None = None, name: str = "qrels"):
        self._qrels: dict[str, dict[str, int]] = {str(q): {str(d): int(r) for d, r in docs.items()}
                                                 for q, docs in (judgments or {}).items()}
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
        """Read TREC qrels (4 columns) or BEIR qrels (3 columns, header ``query-id corpus-id score``).
        A document judged twice for one query is an error."""
        path = Path(path)
        qrels = cls(name=path.name)
        for line, cols in tsv_rows(path, min_columns=3, header_startswith="query"):
            qid, docid, rel = (cols[0], cols[2], cols[3]) if len(cols) >= 4 else (cols[0], cols[1], cols[2])
            try:
                grade = int(float(rel))
            except ValueError:
                raise InputError(f"relevance {rel!r} is not a number", path, line) from None
            docs = qrels._qrels.setdefault(qid.strip(), {})
            docid = docid.strip()
            if docid in docs and docs[docid] != grade:
                raise InputError(f"document {docid!r} judged twice for query {qid!r} "
                                 f"({docs[docid]} and {grade})", path, line)
            docs[docid] = grade
        if not qrels._qrels:
            raise InputError("no judgments found", path)
        return qrels

    def write_trec(self, path: PathLike) -> None:
        with open_text(path, "w") as f:
            for qid, docs in self._qrels.items():
                for docid, rel in docs.items():
                    f.write(f"{qid} 0 {docid} {rel}\n")
