"""Immutable index segments: building one from documents' terms, and reading one back memory-mapped.

A segment is one container file (rankstack.index.container) holding its vocabulary and doc-id tables
(StringTable), document lengths, the compressed postings (rankstack.index.postings) and, optionally, the stored
documents. Segments never change once written; deletions live in separate tombstone files named by the manifest.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from numba import njit

from rankstack.errors import IndexFormatError, InputError
from rankstack.index import lucene, postings
from rankstack.index.container import Container, FileRef, write_container
from rankstack.index.reorder import bisection_order
from rankstack.index.strings import StringTable
from rankstack.text.ascii_tokens import TokenTerms

SEGMENT_FORMAT = 3  # 3: one container file; 2: a directory of .npy files
MODES = ("bm25", "impact")
_UNSEEN = -2  # a code whose term is not looked up yet (-1 is a dropped token)


class Vocabulary(dict):
    """term -> term id, numbering a new term at its first lookup (0, 1, ...); None, a dropped token, is -1."""

    def __init__(self) -> None:
        super().__init__({None: -1})

    def __missing__(self, term: str) -> int:
        if not isinstance(term, str):
            raise InputError(f"index terms must be strings, got {term!r}")
        self[term] = term_id = len(self) - 1
        return term_id

    def terms(self) -> list[str]:
        """The terms, in id order."""
        return list(self)[1:]


def _check_term(term: object, doc_id: str, location: str) -> None:
    """InputError naming the document unless `term` is a string (None, a dropped token, is not a term here)."""
    if not isinstance(term, str):
        raise InputError(f"{location + ': ' if location else ''}document {doc_id!r}: terms must be strings, got "
                         f"{term!r}")


class SegmentBuilder:
    """Accumulates documents in memory as compact arrays, then writes them as one segment.

    mode "bm25": each document is a sequence of terms (repeats = term frequency).
    mode "impact": each document maps terms to positive weights (learned sparse), quantised to
    integers of `impact_bits` bits with the index's scale when the segment is written.
    A document may have no terms at all (only stopwords, or an empty text): it is stored and found by id, and
    matches no query.
    """

    def __init__(self, mode: str, store: bool, length_norm: str = "exact", reorder: bool = False):
        if mode not in MODES:
            raise InputError(f"unknown index mode {mode!r} (expected one of {MODES})")
        self.mode, self.store, self.length_norm, self.reorder = mode, store, length_norm, reorder
        self.vocab = Vocabulary()
        self.doc_ids: list[str] = []
        self.doc_locations: list[str] = []
        self.stored: list[str] = []
        self._term_ids = array("i")
        self._values = array("f")
        self._lengths = array("i")
        self._num_terms = array("i")
        self._coded_terms: TokenTerms | None = None  # the list that _code_ids caches lookups in
        self._code_ids = np.empty(0, np.int32)  # code -> term id, _UNSEEN where not looked up yet

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def num_tokens(self) -> int:
        return len(self._term_ids)

    def add_batch(self, doc_ids: list[str], terms: list[str | None], counts: Sequence[int],
                  stored: list[str] | None = None, locations: list[str] | None = None,
                  codes: np.ndarray | None = None) -> None:
        """Add bm25 documents in bulk: all their terms in one list (None = a dropped token) and the number of
        entries of each document. With `codes`, token i's term is `terms[codes[i]]` (rankstack.text.analyzer's
        TermBatch): each term a code names is looked up once per call, or once per builder when `terms` is a
        TokenTerms (a list that only grows)."""
        counts = np.asarray(counts, np.int64)
        tokens = len(terms) if codes is None else len(codes)
        if len(counts) != len(doc_ids) or int(counts.sum()) != tokens or (len(counts) and counts.min() < 0):
            raise InputError(f"add_batch: {len(doc_ids)} documents need as many term counts, each >= 0, summing to "
                             f"the {tokens} terms (got {len(counts)} counts summing to {int(counts.sum())})")
        if codes is None:
            ids = np.fromiter(map(self.vocab.__getitem__, terms), np.int32, len(terms))
        else:
            codes = np.asarray(codes)
            if codes.ndim != 1 or codes.dtype.kind not in "iu" or (len(codes) and (codes.min() < 0
                                                                                 or codes.max() >= len(terms))):
                raise InputError(f"add_batch: codes must be one integer per token, indexing the {len(terms)} terms")
            ids = self._term_ids_of(terms, codes)
        kept = ids >= 0
        doc_of = np.repeat(np.arange(len(doc_ids)), counts)
        lengths = np.bincount(doc_of[kept], minlength=len(doc_ids)).astype(np.int32)
        self._term_ids.frombytes(ids[kept].tobytes())
        self._lengths.frombytes(lengths.tobytes())
        self._num_terms.frombytes(lengths.tobytes())
        self.doc_ids += doc_ids
        self.doc_locations += locations or [""] * len(doc_ids)
        if self.store:
            self.stored += stored if stored is not None else [""] * len(doc_ids)

    def _term_ids_of(self, terms: list[str | None], codes: np.ndarray) -> np.ndarray:
        """The term id of each code's term (-1 for None), numbering new terms; only the terms that codes name are
        looked up (a term no token has is not numbered)."""
        if not isinstance(terms, TokenTerms) or terms is not self._coded_terms:
            self._coded_terms = terms if isinstance(terms, TokenTerms) else None
            self._code_ids = np.empty(0, np.int32)
        if len(self._code_ids) < len(terms):
            grown = np.full(max(len(terms), 2 * len(self._code_ids)), _UNSEEN, np.int32)
            grown[:len(self._code_ids)] = self._code_ids
            self._code_ids = grown
        ids = self._code_ids[codes]
        unseen = np.unique(codes[ids == _UNSEEN])
        if len(unseen):
            self._code_ids[unseen] = np.fromiter(map(self.vocab.__getitem__, map(terms.__getitem__, unseen.tolist())),
                                                 np.int32, len(unseen))
            ids = self._code_ids[codes]
        return ids

    def add(self, doc_id: str, terms: Sequence[str] | Mapping[str, int], stored: str | None = None,
            location: str = "") -> None:
        vocab = self.vocab
        if self.mode == "bm25":
            ids = []
            for term in terms:
                _check_term(term, doc_id, location)
                ids.append(vocab[term])
            self._term_ids.extend(ids)
            self._lengths.append(len(ids))
            self._num_terms.append(len(ids))
        else:
            before = len(self._term_ids)
            for term, weight in terms.items():
                _check_term(term, doc_id, location)
                if not (isinstance(weight, (int, float, np.number)) and np.isfinite(weight) and weight >= 0):
                    raise InputError(f"{location + ': ' if location else ''}document {doc_id!r}: weight of "
                                     f"{term!r} must be a finite number >= 0, got {weight!r}")
                if weight > 0:
                    self._term_ids.append(vocab[term])
                    self._values.append(weight)
            self._lengths.append(len(self._term_ids) - before)
            self._num_terms.append(len(self._term_ids) - before)
        self.doc_ids.append(doc_id)
        self.doc_locations.append(location)
        if self.store:
            self.stored.append(stored or "")

    def max_weight(self) -> float:
        return max(self._values, default=0.0)

    def write(self, path: Path, impact_scale: float = 1.0, impact_bits: int = 8) -> FileRef:
        """Write the segment as a new container file (fsynced). Impact-mode weights become
        round(weight / impact_scale), clipped to 1 .. 2**impact_bits - 1."""
        num_docs = len(self.doc_ids)
        lengths = np.array(self._lengths, dtype=np.int32)
        if self.mode == "bm25":
            term_ids, docs, values = _invert(np.frombuffer(self._term_ids, np.int32),
                                             np.frombuffer(self._num_terms, np.int32), len(self.vocab) - 1)
        else:
            term_ids = np.array(self._term_ids, dtype=np.int64)
            docs = np.repeat(np.arange(num_docs, dtype=np.int64), np.array(self._num_terms, dtype=np.int64))
            values = np.clip(np.rint(np.array(self._values, dtype=np.float64) / impact_scale), 1,
                             2**impact_bits - 1).astype(np.uint32)
        return write_segment(path, self.mode, self.length_norm, self.vocab.terms(), self.doc_ids,
                             self.stored if self.store else None, term_ids, docs, values, lengths, self.reorder)


@njit(cache=True, nogil=True)
def _invert(token_terms, doc_tokens, num_terms):
    """Postings of documents given as their tokens' term ids, one document after another (`doc_tokens[d]` tokens
    each): (term id, docno, frequency) in term order, each term's docnos increasing. A counting sort by term: the
    documents come in docno order, so each term's docnos arrive sorted, repeats side by side."""
    starts = np.zeros(num_terms + 1, np.int64)
    for t in token_terms:
        starts[t + 1] += 1
    for t in range(num_terms):
        starts[t + 1] += starts[t]
    fill = starts[:-1].copy()
    slots = np.empty(len(token_terms), np.int32)
    i = 0
    for d in range(len(doc_tokens)):
        for _ in range(doc_tokens[d]):
            t = token_terms[i]
            slots[fill[t]] = d
            fill[t] += 1
            i += 1
    term_ids = np.empty(len(token_terms), np.int64)
    docs = np.empty(len(token_terms), np.int64)
    freqs = np.empty(len(token_terms), np.uint32)
    n = 0
    for t in range(num_terms):
        for j in range(starts[t], starts[t + 1]):
            if j > starts[t] and slots[j] == slots[j - 1]:
                freqs[n - 1] += 1
            else:
                term_ids[n] = t
                docs[n] = slots[j]
                freqs[n] = 1
                n += 1
    return term_ids[:n], docs[:n], freqs[:n]


@njit(cache=True, nogil=True)
def _group_by_term(new_id, term_ids, docnos, values):
    """Postings grouped by their term's new id (`new_id[term_ids]`), each term's in the order given: a stable
    counting sort. Returns (term offsets, docnos int32, values uint32, problem): problem 0, 1 when a term's docnos
    do not increase, 2 when a term id is out of range (nothing grouped)."""
    offsets = np.zeros(len(new_id) + 1, np.int64)
    out_docs = np.empty(len(term_ids), np.int32)
    out_values = np.empty(len(term_ids), np.uint32)
    for t in term_ids:
        if t < 0 or t >= len(new_id):
            return offsets, out_docs, out_values, 2
        offsets[new_id[t] + 1] += 1
    for t in range(len(new_id)):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    problem = 0
    for i in range(len(term_ids)):
        t = new_id[term_ids[i]]
        j = fill[t]
        if j > offsets[t] and out_docs[j - 1] >= docnos[i]:
            problem = 1
        out_docs[j] = docnos[i]
        out_values[j] = values[i]
        fill[t] = j + 1
    return offsets, out_docs, out_values, problem


def write_segment(path: Path, mode: str, length_norm: str, terms: list[str], doc_ids: list[str],
                  stored: list[str] | None, term_ids: np.ndarray, docnos: np.ndarray, values: np.ndarray,
                  lengths: np.ndarray, reorder: bool = False) -> FileRef:
    """Write a segment file from postings (term id, docno, value), each term's in increasing docno order but terms
    interleaved in any order, and exact document lengths. `reorder`: documents get new docnos by recursive graph
    bisection (`rankstack.index.reorder`), their ids, texts and lengths moving with them."""
    num_docs = len(doc_ids)
    if reorder:
        order = bisection_order(term_ids, docnos, num_docs)  # order[new] = old
        new_docno = np.empty(num_docs, np.int64)
        new_docno[order] = np.arange(num_docs)
        docnos, lengths = new_docno[docnos], np.asarray(lengths)[order]
        doc_ids = [doc_ids[i] for i in order]
        stored = [stored[i] for i in order] if stored is not None else None
        # each term's postings in docno order again (the stable sort by term below keeps that order)
        by_doc = np.argsort(docnos, kind="stable")
        term_ids, docnos, values = term_ids[by_doc], docnos[by_doc], values[by_doc]
    # Terms in sorted order: lookups binary-search the term table itself, no hash table on disk.
    by_term = sorted(range(len(terms)), key=terms.__getitem__)
    new_id = np.empty(len(terms), dtype=np.int64)
    new_id[by_term] = np.arange(len(terms))
    terms = [terms[i] for i in by_term]
    term_offsets, docnos, values, problem = _group_by_term(new_id, np.asarray(term_ids), np.asarray(docnos),
                                                           np.asarray(values))
    if problem == 2:
        raise InputError(f"postings name term ids outside the {len(terms)} terms")
    if problem:
        raise InputError("a document lists the same term twice, or a term's postings are out of docno order")
    # Scoring sees lengths as Lucene stores them (one lossy byte) when asked; avgdl uses exact sums.
    # Lucene-rounded lengths are stored as their one-byte codes.
    lucene_norms = length_norm == "lucene"
    scoring_lengths = lucene.quantise_lengths(lengths).astype(np.int32) if lucene_norms else lengths
    encoded = postings.encode_postings(term_offsets, docnos, values, scoring_lengths, mode)
    stored_lengths = lucene.encode_lengths(lengths) if lucene_norms else scoring_lengths
    arrays = {"doc_lengths": stored_lengths, **encoded,
              **StringTable.arrays("terms", terms, block=16),  # sorted: long shared prefixes
              **StringTable.arrays("ids", doc_ids)}
    if stored is not None:
        arrays.update(StringTable.arrays("docs", stored, block=1))  # long texts: no shared prefixes
    meta = {"format": SEGMENT_FORMAT, "mode": mode, "num_docs": num_docs, "num_terms": len(terms),
            "num_postings": int(len(docnos)), "sum_lengths": int(lengths.sum()), "stored": stored is not None}
    return write_container(path, arrays, meta)


def merge_segments(segments: list["Segment"], lives: list[np.ndarray | None], path: Path,
                   length_norm: str, reorder: bool = False) -> FileRef:
    """Write the live documents of `segments`, in order (or reordered anew, `write_segment`), as one new segment
    file."""
    vocab: dict[str, int] = {}
    doc_ids: list[str] = []
    stored: list[str] | None = [] if all(s.docs is not None for s in segments) else None
    parts, exact_lengths, base = [], [], 0
    for seg, live in zip(segments, lives):
        live = np.ones(seg.num_docs, dtype=bool) if live is None else live
        new_docno = np.cumsum(live) - 1 + base
        term_offsets, docnos, values = seg.decode_all()
        term_map = np.array([vocab.setdefault(t, len(vocab)) for t in seg.terms], dtype=np.int64)
        terms = np.repeat(term_map, np.diff(term_offsets))
        keep = live[docnos]
        parts.append((terms[keep], new_docno[docnos[keep]], values[keep]))
        kept = np.flatnonzero(live)
        doc_ids += seg.ids.take(kept)
        if stored is not None:
            stored += seg.docs.take(kept)
        if seg.mode == "bm25":  # a document's exact length is the sum of its term frequencies
            exact_lengths.append(np.bincount(docnos, weights=values, minlength=seg.num_docs)[kept].astype(np.int32))
        else:
            exact_lengths.append(np.asarray(seg.doc_lengths)[kept])
        base += len(kept)
    term_ids, docnos, values = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return write_segment(path, segments[0].mode, length_norm, list(vocab), doc_ids, stored,
                         term_ids, docnos, values, np.concatenate(exact_lengths), reorder)


class Segment:
    """A read-only, memory-mapped view of one segment file (`expect`: its FileRef in the manifest)."""

    def __init__(self, path: Path, expect: FileRef | None = None, hint: str = ""):
        self.path = path
        self.container = c = Container(path, expect, hint)
        self.meta = c.meta
        if self.meta.get("format") != SEGMENT_FORMAT:
            raise IndexFormatError(f"segment {path} has format {self.meta.get('format')}, "
                                   f"this rankstack reads format {SEGMENT_FORMAT}")
        try:
            self.num_docs: int = int(self.meta["num_docs"])
            self.mode: str = self.meta["mode"]
            self.sum_lengths: int = int(self.meta["sum_lengths"])
            stored = bool(self.meta["stored"])
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFormatError(f"segment {path} has malformed metadata ({e}){hint}") from None
        if self.mode not in MODES:
            raise IndexFormatError(f"segment {path} has unknown mode {self.mode!r}")
        # Lucene's one-byte length codes (memory-mapped, read through LENGTH_TABLE), or exact int32 lengths.
        self.length_codes = c["doc_lengths"]
        if self.length_codes.dtype not in (np.uint8, np.int32) or self.length_codes.ndim != 1:
            raise IndexFormatError(f"segment {path} stores lengths of type {self.length_codes.dtype}{hint}")
        self.length_table = lucene.LENGTH_TABLE if self.length_codes.dtype == np.uint8 else None
        self.postings = {name: c[name] for name in postings.ARRAY_NAMES}
        self.postings.update({name: c[name] for name in postings.OPTIONAL_ARRAYS if name in c})
        where = f"{path}:"
        self.terms = StringTable(c, "terms", sorted=True, where=where + "terms")
        self.ids = StringTable(c, "ids", where=where + "ids")
        self.docs = StringTable(c, "docs", where=where + "docs") if stored else None
        if len(self.ids) != self.num_docs or len(self.length_codes) != self.num_docs or \
                (self.docs is not None and len(self.docs) != self.num_docs):
            raise IndexFormatError(f"segment {path} is inconsistent: {len(self.ids)} ids, "
                                   f"{len(self.length_codes)} lengths, {self.num_docs} documents{hint}")
        self._hint = hint
        self._verified = False

    @property
    def name(self) -> str:
        return self.path.stem

    def verify(self) -> None:
        """Check every checksum and every structure the query kernels and lookups rely on (once): after this, no
        kernel reads outside its arrays, even on a file that passes its checksums but was written wrong."""
        if self._verified:
            return
        self.container.verify()
        mode = postings.MODES[self.mode]
        problem = postings.check(self.postings, self.num_docs, mode, self.length_codes)
        if problem is None and len(self.terms) != len(self.postings["term_blocks"]) - 1:
            problem = "the term table and the postings disagree on the number of terms"
        if problem is None and self.length_table is None and \
                int(self.length_codes.sum(dtype=np.int64)) != self.sum_lengths:
            problem = "document lengths do not add up to the recorded total"
        if problem is not None:
            raise IndexFormatError(f"segment {self.path} is damaged: {problem}{self._hint}")
        for table in (self.terms, self.ids, self.docs):
            if table is not None:
                table.check()
        self._verified = True

    @property
    def doc_lengths(self) -> np.ndarray:
        """Every document's length (int32, in memory: for merging)."""
        codes = self.length_codes
        return codes if self.length_table is None else self.length_table[codes].astype(np.int32)

    def term_df(self, term_ids: np.ndarray) -> np.ndarray:
        """Document frequency of each term id (-1: absent, df 0)."""
        term_ids = np.asarray(term_ids, dtype=np.int64)
        out = np.zeros(len(term_ids), np.int64)
        present = term_ids >= 0
        out[present] = postings.term_df(self.postings, term_ids[present])
        return out

    def decode_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings as CSR arrays (term_offsets, docnos, values), for merging."""
        self.verify()
        return postings.decode_terms(self.postings, np.arange(len(self.terms)))


def read_tombstones(path: Path, expect: FileRef, num_docs: int, hint: str = "") -> np.ndarray:
    """The live flags (True: live) of a segment from its tombstone file."""
    c = Container(path, expect, hint)
    deleted = c["deleted"]
    if deleted.dtype != np.bool_ or deleted.shape != (num_docs,):
        raise IndexFormatError(f"tombstone file {path} does not match its segment ({deleted.shape[0]} flags for "
                               f"{num_docs} documents){hint}")
    return ~deleted


def write_tombstones(path: Path, deleted: np.ndarray) -> FileRef:
    return write_container(path, {"deleted": np.asarray(deleted, dtype=np.bool_)})
