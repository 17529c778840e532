"""Immutable index segments: building one from documents' terms, and reading one back memory-mapped.

A segment directory holds its vocabulary and doc-id tables (StringTable), document lengths, the
compressed postings (rankstack.index.postings) and, optionally, the stored documents. Segments never
change once written; deletions live in separate tombstone files named by the manifest.
"""

from __future__ import annotations

import functools
import json
import shutil
from array import array
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rankstack.errors import IndexFormatError, InputError
from rankstack.index import lucene, postings
from rankstack.index.storage import fsync_dir, load_array, save_arrays
from rankstack.index.strings import StringTable

SEGMENT_FORMAT = 2
MODES = ("bm25", "impact")


class SegmentBuilder:
    """Accumulates documents in memory as compact arrays, then writes them as one segment.

    mode "bm25": each document is a sequence of terms (repeats = term frequency).
    mode "impact": each document maps terms to positive weights (learned sparse), quantised to
    integers of `impact_bits` bits with the index's scale when the segment is written.
    """

    def __init__(self, mode: str, store: bool, length_norm: str = "exact"):
        if mode not in MODES:
            raise InputError(f"unknown index mode {mode!r} (expected one of {MODES})")
        self.mode, self.store, self.length_norm = mode, store, length_norm
        self.vocab: dict[str, int] = {}
        self._lookup: dict[str | None, int] = {None: -1}  # vocab, plus None (a dropped token) -> -1
        self.doc_ids: list[str] = []
        self.doc_locations: list[str] = []
        self.stored: list[str] = []
        self._term_ids = array("i")
        self._values = array("f")
        self._lengths = array("i")
        self._num_terms = array("i")

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def num_tokens(self) -> int:
        return len(self._term_ids)

    def add_batch(self, doc_ids: list[str], terms: list[str | None], counts: list[int],
                  stored: list[str] | None = None, locations: list[str] | None = None) -> None:
        """Add bm25 documents in bulk: all their terms in one list (None = a dropped token) and the
        number of entries of each document."""
        lookup = self._lookup
        for term in set(terms).difference(lookup):
            lookup[term] = len(self.vocab)
            self.vocab[term] = len(self.vocab)
        ids = np.array(list(map(lookup.__getitem__, terms)), dtype=np.int32)
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

    def add(self, doc_id: str, terms: Sequence[str] | Mapping[str, int], stored: str | None = None,
            location: str = "") -> None:
        vocab = self.vocab
        if self.mode == "bm25":
            ids = [vocab.setdefault(t, len(vocab)) for t in terms]
            self._term_ids.extend(ids)
            self._lengths.append(len(ids))
            self._num_terms.append(len(ids))
        else:
            before = len(self._term_ids)
            for term, weight in terms.items():
                if not (isinstance(weight, (int, float, np.number)) and np.isfinite(weight) and weight >= 0):
                    raise InputError(f"{location + ': ' if location else ''}document {doc_id!r}: weight of "
                                     f"{term!r} must be a finite number >= 0, got {weight!r}")
                if weight > 0:
                    self._term_ids.append(vocab.setdefault(term, len(vocab)))
                    self._values.append(weight)
            self._lengths.append(len(self._term_ids) - before)
            self._num_terms.append(len(self._term_ids) - before)
        self.doc_ids.append(doc_id)
        self.doc_locations.append(location)
        if self.store:
            self.stored.append(stored or "")

    def max_weight(self) -> float:
        return max(self._values, default=0.0)

    def write(self, directory: Path, impact_scale: float = 1.0, impact_bits: int = 8) -> dict:
        """Write the segment into a new directory (fsynced); return its metadata. Impact-mode weights
        become round(weight / impact_scale), clipped to 1 .. 2**impact_bits - 1."""
        num_docs = len(self.doc_ids)
        lengths = np.array(self._lengths, dtype=np.int32)
        term_ids = np.array(self._term_ids, dtype=np.int64)
        docs = np.repeat(np.arange(num_docs, dtype=np.int64), np.array(self._num_terms, dtype=np.int64))
        if self.mode == "bm25":
            keys, values = np.unique(term_ids * max(num_docs, 1) + docs, return_counts=True)
            term_ids, docs = keys // max(num_docs, 1), keys % max(num_docs, 1)
        else:
            values = np.clip(np.rint(np.array(self._values, dtype=np.float64) / impact_scale), 1,
                             2**impact_bits - 1).astype(np.uint32)
        return write_segment(directory, self.mode, self.length_norm, list(self.vocab), self.doc_ids,
                             self.stored if self.store else None, term_ids, docs, values, lengths)


def write_segment(directory: Path, mode: str, length_norm: str, terms: list[str], doc_ids: list[str],
                  stored: list[str] | None, term_ids: np.ndarray, docnos: np.ndarray, values: np.ndarray,
                  lengths: np.ndarray) -> dict:
    """Write a segment from postings (term id, docno, value), each term's in increasing docno order but terms
    interleaved in any order, and exact document lengths."""
    directory.mkdir(parents=True)
    num_docs = len(doc_ids)
    # Terms in sorted order: lookups binary-search the term table itself, no hash table on disk.
    by_term = sorted(range(len(terms)), key=terms.__getitem__)
    new_id = np.empty(len(terms), dtype=np.int64)
    new_id[by_term] = np.arange(len(terms))
    terms, term_ids = [terms[i] for i in by_term], new_id[term_ids]
    order = np.argsort(term_ids, kind="stable")  # keeps each term's docnos in order; runs of terms sort fast
    term_ids, docnos, values = term_ids[order], docnos[order].astype(np.int32), values[order].astype(np.uint32)
    if len(term_ids) and np.any((term_ids[1:] == term_ids[:-1]) & (docnos[1:] <= docnos[:-1])):
        raise InputError("a document lists the same term twice, or a term's postings are out of docno order")
    term_offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_ids, minlength=len(terms)), out=term_offsets[1:])
    # Scoring sees lengths as Lucene stores them (one lossy byte) when asked; avgdl uses exact sums.
    # Lucene-rounded lengths are stored as their one-byte codes.
    lucene_norms = length_norm == "lucene"
    scoring_lengths = lucene.quantise_lengths(lengths).astype(np.int32) if lucene_norms else lengths
    encoded = postings.encode_postings(term_offsets, docnos, values, scoring_lengths, mode)
    stored_lengths = lucene.encode_lengths(lengths) if lucene_norms else scoring_lengths
    save_arrays(directory, {"doc_lengths": stored_lengths, **encoded})
    StringTable.write(directory, "terms", terms, block=16)  # sorted: long shared prefixes, lookups cached
    StringTable.write(directory, "ids", doc_ids)  # looked up only by writers: hashes computed then
    if stored is not None:
        StringTable.write(directory, "docs", stored, block=1)  # long texts: no shared prefixes
    meta = {"format": SEGMENT_FORMAT, "mode": mode, "num_docs": num_docs, "num_terms": len(terms),
            "num_postings": int(len(docnos)), "sum_lengths": int(lengths.sum()), "stored": stored is not None,
            "postings": sorted(encoded)}
    (directory / "segment.json").write_text(json.dumps(meta))
    fsync_dir(directory)
    return meta


def merge_segments(segments: list["Segment"], lives: list[np.ndarray | None], directory: Path,
                   length_norm: str) -> dict:
    """Write the live documents of `segments`, in order, as one new segment."""
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
    return write_segment(directory, segments[0].mode, length_norm, list(vocab), doc_ids, stored,
                         term_ids, docnos, values, np.concatenate(exact_lengths))


class Segment:
    """A read-only, memory-mapped view of one segment directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        try:
            self.meta = json.loads((directory / "segment.json").read_text())
        except FileNotFoundError:
            raise IndexFormatError(f"segment {directory} is missing or half-written (no segment.json)") from None
        except json.JSONDecodeError as e:
            raise IndexFormatError(f"segment {directory} is corrupt ({e})") from None
        if self.meta.get("format") != SEGMENT_FORMAT:
            raise IndexFormatError(f"segment {directory} has format {self.meta.get('format')}, "
                                   f"this rankstack reads format {SEGMENT_FORMAT}")
        self.num_docs: int = self.meta["num_docs"]
        self.mode: str = self.meta["mode"]
        # Lucene's one-byte length codes (memory-mapped, read through LENGTH_TABLE), or exact int32 lengths.
        self.length_codes = load_array(directory, "doc_lengths")
        self.length_table = lucene.LENGTH_TABLE if self.length_codes.dtype == np.uint8 else None
        self.postings = {name: load_array(directory, name) for name in self.meta["postings"]}
        self.terms = StringTable(directory, "terms", sorted=True)
        self.ids = StringTable(directory, "ids")
        self.docs = StringTable(directory, "docs") if self.meta["stored"] else None
        if len(self.ids) != self.num_docs or len(self.length_codes) != self.num_docs:
            raise IndexFormatError(f"segment {directory} is inconsistent: {len(self.ids)} ids, "
                                   f"{len(self.length_codes)} lengths, {self.num_docs} documents")

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def doc_lengths(self) -> np.ndarray:
        """Every document's length (int32, in memory: for merging)."""
        codes = self.length_codes
        return codes if self.length_table is None else self.length_table[codes].astype(np.int32)

    @functools.cached_property
    def term_df(self) -> np.ndarray:
        """Document frequency of every term of the segment."""
        return postings.term_df(self.postings)

    def decode_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings as CSR arrays (term_offsets, docnos, values), for merging."""
        return postings.decode_terms(self.postings, np.arange(len(self.terms)))


def remove_segment(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
