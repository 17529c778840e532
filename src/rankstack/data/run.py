"""Runs: ranked results per query, stored columnar (arrays of doc numbers and scores).

Doc numbers index a doc-id table (an index's id store, or an in-memory list for runs read from
files); external ids are resolved only when written out or evaluated. Within a query, hits are
sorted by descending score, ties broken by ascending doc number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

from rankstack.data.files import PathLike, json_lines, numbered_lines, writing
from rankstack.errors import InputError


class DocIds(Protocol):
    """Maps internal doc numbers to external document ids."""

    def __len__(self) -> int: ...

    def __getitem__(self, docno: int) -> str: ...

    def take(self, docnos: np.ndarray) -> list[str]: ...


class IdList:
    """An in-memory DocIds table that also maps ids back to doc numbers."""

    def __init__(self, ids: Iterable[str] = ()):
        self._ids: list[str] = []
        self._numbers: dict[str, int] = {}
        for doc_id in ids:
            self.number(doc_id)

    def number(self, doc_id: str) -> int:
        """The doc number of `doc_id`, allocating a new one for an unseen id."""
        n = self._numbers.get(doc_id)
        if n is None:
            n = self._numbers[doc_id] = len(self._ids)
            self._ids.append(doc_id)
        return n

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, docno: int) -> str:
        return self._ids[docno]

    def take(self, docnos: np.ndarray) -> list[str]:
        ids = self._ids
        return [ids[i] for i in docnos.tolist()]


class Hits(NamedTuple):
    docnos: np.ndarray  # int32
    scores: np.ndarray  # float32


def sort_hits(docnos: np.ndarray, scores: np.ndarray) -> Hits:
    """Sort by descending score, ties by ascending doc number."""
    docnos = np.asarray(docnos, dtype=np.int32)
    scores = np.asarray(scores, dtype=np.float32)
    order = np.lexsort((docnos, -scores))
    return Hits(docnos[order], scores[order])


class Run(Mapping[str, Hits]):
    """Ranked hits for each query, in query order."""

    def __init__(self, results: Mapping[str, tuple[np.ndarray, np.ndarray]], doc_ids: DocIds,
                 name: str = "run", presorted: bool = False):
        self.doc_ids = doc_ids
        self.name = name
        self._results: dict[str, Hits] = {}
        for qid, (docnos, scores) in results.items():
            if len(docnos) != len(scores):
                raise InputError(f"query {qid!r}: {len(docnos)} doc numbers but {len(scores)} scores")
            self._results[qid] = (Hits(np.asarray(docnos, dtype=np.int32), np.asarray(scores, dtype=np.float32))
                                  if presorted else sort_hits(docnos, scores))

    def __getitem__(self, qid: str) -> Hits:
        try:
            return self._results[qid]
        except KeyError:
            raise KeyError(f"query {qid!r} is not in run {self.name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def num_hits(self) -> int:
        return sum(len(h.docnos) for h in self._results.values())

    def ids(self, qid: str) -> list[str]:
        """External doc ids of a query's hits, best first."""
        return self.doc_ids.take(self[qid].docnos)

    def hits(self, qid: str) -> list[tuple[str, float]]:
        """(doc id, score) pairs of a query's hits, best first."""
        h = self[qid]
        return list(zip(self.doc_ids.take(h.docnos), h.scores.tolist()))

    def cut(self, k: int) -> "Run":
        """The top `k` hits of each query."""
        if k < 1:
            raise InputError(f"cut-off must be at least 1, got {k}")
        return Run({q: (h.docnos[:k], h.scores[:k]) for q, h in self._results.items()},
                   self.doc_ids, name=self.name, presorted=True)

    def remove_query_ids(self) -> "Run":
        """This run without the hits whose document id equals their query id (Anserini's -removeQuery, BEIR's
        ignore_identical_ids: for collections such as ArguAna and Quora, whose queries are corpus documents)."""
        results = {}
        for qid, h in self._results.items():
            keep = np.fromiter((d != qid for d in self.doc_ids.take(h.docnos)), dtype=bool, count=len(h.docnos))
            results[qid] = (h.docnos[keep], h.scores[keep])
        return Run(results, self.doc_ids, name=self.name, presorted=True)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """{qid: {doc id: score}}, the form evaluation tools take."""
        return {q: dict(self.hits(q)) for q in self._results}

    def __repr__(self) -> str:
        return f"Run({self.name!r}, {len(self)} queries, {self.num_hits()} hits)"

    # --- construction from external ids --------------------------------------------------------

    @classmethod
    def from_dict(cls, results: Mapping[str, Mapping[str, float] | Sequence[tuple[str, float]]],
                  name: str = "run") -> "Run":
        """Build a run from {qid: {doc id: score}} or {qid: [(doc id, score), ...]}."""
        ids = IdList()
        columns = {}
        for qid, hits in results.items():
            pairs = hits.items() if isinstance(hits, Mapping) else hits
            docnos, scores = [], []
            for doc_id, score in pairs:
                docnos.append(ids.number(str(doc_id)))
                scores.append(score)
            if len(set(docnos)) != len(docnos):
                raise InputError(f"query {qid!r} lists a document more than once")
            columns[str(qid)] = (np.array(docnos, dtype=np.int32), np.array(scores, dtype=np.float32))
        return cls(columns, ids, name=name)

    # --- readers and writers -------------------------------------------------------------------

    @classmethod
    def read(cls, path: PathLike, name: str | None = None) -> "Run":
        """Read a run in TREC format (``qid Q0 docid rank score tag``) or rankstack's JSONL."""
        path = Path(path)
        if path.name.removesuffix(".gz").endswith(".jsonl"):
            return cls.read_jsonl(path, name)
        return cls.read_trec(path, name)

    @classmethod
    def read_trec(cls, path: PathLike, name: str | None = None) -> "Run":
        """Read a TREC run file (whitespace-separated ``qid Q0 docid rank score tag``, as trec_eval reads it).
        Hits are ordered by score, tied scores by the rank column, then by the file's order. Evaluation may order
        ties otherwise: see ``rankstack.evaluate.evaluate``. A qrels file given in place of a run is an error."""
        path = Path(path)
        ids = IdList()
        per_query: dict[str, tuple[list[int], list[float], list[int]]] = {}
        seen: dict[str, set[int]] = {}
        for line, text in numbered_lines(path):
            cols = text.split()
            if len(cols) != 6:
                raise InputError(_wrong_columns(cols), path, line)
            qid, _, doc_id, rank, score, _ = cols
            try:
                score_value, rank_value = float(score), int(rank)
            except ValueError:
                raise InputError(f"rank {rank!r} or score {score!r} is not a number", path, line) from None
            if score_value != score_value:
                raise InputError(f"score {score!r} is not a number", path, line)
            docno = ids.number(doc_id)
            if docno in seen.setdefault(qid, set()):
                raise InputError(f"document {doc_id!r} appears twice for query {qid!r}", path, line)
            seen[qid].add(docno)
            docnos, scores, ranks = per_query.setdefault(qid, ([], [], []))
            docnos.append(docno)
            scores.append(score_value)
            ranks.append(rank_value)
        if not per_query:
            raise InputError("empty run file", path)
        columns = {}
        for qid, (docnos, scores, ranks) in per_query.items():
            d, s, r = np.array(docnos, np.int32), np.array(scores, np.float32), np.array(ranks)
            order = np.lexsort((r, -s))  # stable: equal score and rank keep the file's order
            columns[qid] = (d[order], s[order])
        return cls(columns, ids, name=name or path.stem, presorted=True)

    @classmethod
    def read_jsonl(cls, path: PathLike, name: str | None = None) -> "Run":
        """Read rankstack's JSONL run: one line per query, ``{"qid", "hits": [[doc id, score], ...]}``. A query on
        two lines is an error (a run written twice into one file, or two runs concatenated, would otherwise
        lose hits silently, or mix two rankings if merged)."""
        path = Path(path)
        results, lines = {}, {}
        for line, obj in json_lines(path):
            if "qid" not in obj or not isinstance(obj.get("hits"), list):
                raise InputError("expected {'qid': ..., 'hits': [[doc id, score], ...]}", path, line)
            qid = str(obj["qid"])
            if qid in lines:
                raise InputError(f"query {qid!r} is on line {lines[qid]} already; a JSONL run has one line per query",
                                 path, line)
            lines[qid] = line
            try:
                results[qid] = [(str(d), float(s)) for d, s in obj["hits"]]
            except (TypeError, ValueError):
                raise InputError("each hit must be a [doc id, score] pair", path, line) from None
        try:
            return cls.from_dict(results, name=name or path.stem)
        except InputError as e:
            raise InputError(str(e), path) from None

    def write_trec(self, path: PathLike, tag: str | None = None) -> None:
        """Write the run in TREC format; ranks start at 1. An id that is empty or holds whitespace is an
        InputError: TREC columns are separated by whitespace (write JSONL instead)."""
        tag = "_".join((tag or self.name or "rankstack").split()) or "rankstack"
        with writing(path) as f:
            for qid, h in self._results.items():
                ids = self.doc_ids.take(h.docnos)
                _check_trec_ids(qid, ids)
                f.writelines(f"{qid} Q0 {d} {r} {s:.6f} {tag}\n"
                             for r, (d, s) in enumerate(zip(ids, h.scores.tolist()), start=1))

    def write_jsonl(self, path: PathLike) -> None:
        """Write the run as JSONL, one line per query (see ``read_jsonl``)."""
        with writing(path) as f:
            for qid in self._results:
                f.write(json.dumps({"qid": qid, "hits": [[d, round(s, 6)] for d, s in self.hits(qid)]},
                                   ensure_ascii=False) + "\n")


def _check_trec_ids(qid: str, ids: list[str]) -> None:
    """Refuse ids a TREC line cannot hold: splitting the joined ids on whitespace gives them back only if each is
    non-empty and free of whitespace."""
    if qid.split() != [qid]:
        raise InputError(f"query id {qid!r} is empty or holds whitespace, which a TREC run file cannot hold; "
                         "write JSONL instead")
    if "\n".join(ids).split() != ids:
        bad = next(d for d in ids if d.split() != [d])
        raise InputError(f"document id {bad!r} (query {qid!r}) is empty or holds whitespace, which a TREC run "
                         "file cannot hold; write JSONL instead")


def _wrong_columns(cols: list[str]) -> str:
    """Why a TREC run line without 6 columns was refused, naming a qrels file where the line is one."""
    expected = "expected 6 columns 'qid Q0 docid rank score tag'"
    if len(cols) == 4 and cols[3].lstrip("-").isdigit():
        return f"this is a line of a qrels file ('qid iter docid rel'), not of a run: {expected}"
    return f"{expected}, found {len(cols)}"
