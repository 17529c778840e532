"""The inverted index: a manifest naming immutable segment files and their tombstones (rankstack.index.commit).

Reading: `InvertedIndex(path)` opens a consistent snapshot (the manifest as committed when opened)
and searches all its segments with global statistics. Writing: `IndexWriter(path)` adds documents
as new segments, deletes by id with tombstones, merges segments, and commits by atomically
replacing the manifest, so a crash at any moment leaves the last commit intact.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.index import commit, topk
from rankstack.index.commit import LockedWriter, Manifest, Snapshot, WriterLock, check_hint, new_name
from rankstack.index.container import FileRef, file_ref, read_checked
from rankstack.data.run import Hits
from rankstack.index.query import SegmentSearcher
from rankstack.index.scoring import idf
from rankstack.index.search import (EMPTY, CollectionStats, InvertedParams, SparseQueries, Vocabulary, bag_items,
                                    check_k)
from rankstack.index.segment import (MODES, Segment, SegmentBuilder, merge_segments, read_tombstones,
                                     write_tombstones)
from rankstack.index.strings import StringTable, string_hashes

FORMAT = "rankstack-inverted-index"
FORMAT_VERSION = 2  # 2: segments and tombstones are checksummed container files
WHAT = "inverted index"
ALGORITHMS = ("maxscore", "bmw", "bmp", "exhaustive")
TERM_CACHE = 1 << 16  # terms whose lookups a snapshot remembers (then it starts over): about 20 MB at most
# impact_scale None: set at the first flush so that the largest weight seen maps to the top quantum.
DEFAULT_SETTINGS = {"mode": "bm25", "k1": 0.9, "b": 0.4, "length_norm": "lucene", "impact_bits": 8,
                    "impact_scale": None, "reorder": False,
                    "store": True, "metadata": {}}

Query = Mapping[str, float]  # term -> count (bm25) or weight (impact)
_DEFAULT_PARAMS = InvertedParams()


class TermInfo(NamedTuple):
    """A query term in a snapshot: its id in each segment (-1 where absent), its document frequency, its weight per
    unit of query weight (BM25's idf or the impact scale)."""

    ids: tuple[int, ...]
    df: int
    factor: float


def _segment_ids(infos: list[TermInfo], segments: int) -> np.ndarray:
    """Terms' ids in each segment as an int32 array [segments, terms]."""
    if segments == 1:
        return np.array([info.ids[0] for info in infos], np.int32).reshape(1, len(infos))
    return np.ascontiguousarray(np.array([info.ids for info in infos], np.int32).reshape(len(infos), segments).T)


def read_manifest(path: Path) -> Manifest:
    return commit.read_manifest(path, FORMAT, FORMAT_VERSION, WHAT)


class IndexDocIds:
    """Global doc numbers (segments laid end to end) -> external ids."""

    def __init__(self, segments: Sequence[Segment], bases: np.ndarray):
        self._segments, self._bases = segments, bases

    def __len__(self) -> int:
        return int(self._bases[-1])

    def locate(self, docnos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        docnos = np.asarray(docnos, dtype=np.int64)
        seg = np.searchsorted(self._bases, docnos, side="right") - 1
        return seg, docnos - self._bases[seg]

    def __getitem__(self, docno: int) -> str:
        return self.take(np.array([docno]))[0]

    def take(self, docnos: np.ndarray) -> list[str]:
        if len(self._segments) == 1:
            return self._segments[0].ids.take(docnos)
        seg, local = self.locate(docnos)
        out: list[str] = [""] * len(seg)
        for s in np.unique(seg).tolist():
            where = np.flatnonzero(seg == s)
            for i, doc_id in zip(where.tolist(), self._segments[s].ids.take(local[where])):
                out[i] = doc_id
        return out


class InvertedIndex(Snapshot):
    """A read-only snapshot of an index directory.

    Opening reads the manifest and the segments' headers; the first search checks every file's checksums and
    structures once (`verify`), so that damage is an IndexFormatError naming the file, never a crash.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()
        self.manifest: Manifest = commit.open_snapshot(self.path, lambda: read_manifest(self.path), self._open)

    def _open(self, manifest: Manifest) -> Manifest:
        hint = check_hint(self.path)
        self.settings: dict[str, Any] = manifest.settings
        self.generation: int = manifest.generation
        self.segments = [Segment(self.path / s.files["data"].name, s.files["data"], hint) for s in manifest.segments]
        self.live = [read_tombstones(self.path / s.deletes.name, s.deletes, s.num_docs, hint) if s.deletes else None
                     for s in manifest.segments]
        for entry, seg in zip(manifest.segments, self.segments):
            if seg.num_docs != entry.num_docs:
                raise IndexFormatError(f"segment {seg.path} holds {seg.num_docs} documents, the manifest "
                                              f"says {entry.num_docs}{hint}")
        self.bases = np.zeros(len(self.segments) + 1, dtype=np.int64)
        np.cumsum([s.num_docs for s in self.segments], out=self.bases[1:])
        self.doc_ids = IndexDocIds(self.segments, self.bases)
        # Like Lucene, statistics count deleted documents until a merge removes them.
        self.num_docs = int(self.bases[-1])
        self.num_deleted = sum(s.num_deleted for s in manifest.segments)
        self.sum_lengths = sum(s.sum_lengths for s in self.segments)
        self.searchers = [SegmentSearcher(seg.postings, seg.length_codes, live, seg.length_table)
                          for seg, live in zip(self.segments, self.live)]
        self._terms: dict[str, TermInfo] = {}  # see _term_infos
        self._vocabularies: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._default_scoring = None  # _scoring's answer for default params (the snapshot's own statistics)
        return manifest

    @property
    def mode(self) -> str:
        return self.settings["mode"]

    @property
    def num_live(self) -> int:
        return self.num_docs - self.num_deleted

    @property
    def avgdl(self) -> float:
        return self.sum_lengths / self.num_docs if self.num_docs else 0.0

    def __len__(self) -> int:
        return self.num_live

    def __repr__(self) -> str:
        return (f"InvertedIndex({str(self.path)!r}, {self.mode}, {self.num_live} documents, "
                f"{len(self.segments)} segments)")

    def read_file(self, role: str) -> bytes | None:
        """The content of an index-level file the manifest names (see IndexWriter.set_file), checked; None if
        there is none."""
        ref = self.manifest.files.get(role)
        return None if ref is None else read_checked(self.path / ref.name, ref, check_hint(self.path))

    def _verify(self) -> None:
        for seg in self.segments:
            seg.verify()

    # --- statistics and weights ----------------------------------------------------------------

    def document_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """Document frequency of each term in this snapshot (deleted documents count until a merge, as in
        Lucene): what sharded search adds up into collection statistics."""
        return np.array([info.df for info in self._term_infos(list(terms))], dtype=np.int64)

    def idf(self, df: np.ndarray) -> np.ndarray:
        """Lucene's BM25 idf of document frequencies in this snapshot, as float32."""
        return idf(df, self.num_docs)

    def _term_infos(self, terms: Sequence[str]) -> list[TermInfo]:
        """Each term's id in each segment (-1 where absent), document frequency in this snapshot and weight per unit
        of query weight (BM25's idf, or the impact scale), looked up once per term: the cache holds at most
        TERM_CACHE terms, then starts over."""
        cache = self._terms
        found = [cache.get(t) for t in terms]  # (read once: another thread may clear the cache meanwhile)
        if None not in found:
            return found  # type: ignore[return-value]
        missing = [i for i, info in enumerate(found) if info is None]
        names = [terms[i] for i in missing]
        positions = np.array([seg.terms.positions(names) for seg in self.segments], dtype=np.int64)
        positions = positions.reshape(len(self.segments), len(names))
        df = sum((seg.term_df(pos) for seg, pos in zip(self.segments, positions)), np.zeros(len(names), np.int64))
        if self.mode == "bm25":
            factors = self.idf(df).astype(np.float64).tolist()
        else:
            factors = [float(self.settings["impact_scale"])] * len(names)
        new = [TermInfo(tuple(ids), d, f) for ids, d, f in zip(positions.T.tolist(), df.tolist(), factors)]
        if len(cache) + len(names) > TERM_CACHE:
            cache.clear()
        if len(names) <= TERM_CACHE:
            cache.update(zip(names, new))
        for i, info in zip(missing, new):
            found[i] = info
        return found  # type: ignore[return-value]

    def _columns(self, vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a query vocabulary: each term's id in each segment (int32 [segments, terms], -1 where absent), its
        document frequency in this snapshot and its weight per unit of query weight (`_term_infos`). Looked up once
        per vocabulary (an encoder's is reused across batches) and per term."""
        known = self._vocabularies.get(vocabulary.key) if vocabulary.shared else None
        if known is not None:
            return known
        infos = self._term_infos(vocabulary.terms)
        columns = (_segment_ids(infos, len(self.segments)),
                   np.array([i.df for i in infos], dtype=np.int64),
                   np.array([i.factor for i in infos], dtype=np.float64))
        if vocabulary.shared:
            if len(self._vocabularies) >= 16:
                self._vocabularies.clear()
            self._vocabularies[vocabulary.key] = columns
        return columns

    def _factors(self, vocabulary: Vocabulary, factors: np.ndarray, stats: CollectionStats | None) -> np.ndarray:
        """Each term's weight per unit of query weight: the snapshot's (`factors`), or BM25's idf in `stats`'
        collection."""
        if stats is None or self.mode != "bm25":
            return factors
        global_df = np.array([stats.df.get(t, 0) for t in vocabulary], dtype=np.int64)
        return idf(global_df, stats.num_docs).astype(np.float64)

    def _one_bag(self, bag: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One term -> weight mapping as a CSR batch of one, checked as `SparseQueries.from_bags` checks it and
        weighted as `search` weights SparseQueries (equal results), with no SparseQueries in between: the per-query
        path. (indptr, term ids int32 [segments, terms], float32 weights x the snapshot's factors)."""
        pairs = bag_items(bag)
        infos = self._term_infos([t for t, _ in pairs])
        # the weight rounded to float32, times the factor in float64, rounded to float32
        weights = [(w if type(w) is int else float(np.float32(w))) * info.factor for (_, w), info in zip(pairs, infos)]
        return np.array([0, len(pairs)], np.int64), _segment_ids(infos, len(self.segments)), \
            np.array(weights, np.float32)

    # --- search --------------------------------------------------------------------------------

    def search(self, queries: SparseQueries | Sequence[Query], k: int = 10,
               params: InvertedParams | None = None) -> list[Hits]:
        """Top-k (global doc numbers, scores) of each query, best first, ties by doc number. `queries`:
        SparseQueries, or term -> weight mappings (a BM25 query: term -> count)."""
        params = params or _DEFAULT_PARAMS
        if params.algorithm not in ALGORITHMS:
            raise InputError(f"unknown search algorithm {params.algorithm!r} (expected one of {ALGORITHMS})")
        k = check_k(k)
        self.verify()
        if isinstance(queries, (list, tuple)) and len(queries) == 1 and (params.stats is None or self.mode != "bm25"):
            indptr, term_ids, weights = self._one_bag(queries[0])  # one query: straight to segment term ids
        else:
            queries = SparseQueries.of(queries)
            term_ids, _, factors = self._columns(queries.vocabulary)
            indptr, term_ids = queries.indptr, term_ids[:, queries.indices]
            weights = (queries.data * self._factors(queries.vocabulary, factors, params.stats)[queries.indices]
                       ).astype(np.float32)
        scoring = self._scoring(params)
        n = len(indptr) - 1
        if n == 1:  # the per-query path: each segment's hits straight from its kernel
            parts = [searcher.search(term_ids[s], weights, k, algorithm=params.algorithm, theta=params.theta,
                                     **scoring) for s, searcher in enumerate(self.searchers)]
            if len(parts) == 1:
                return [Hits(*parts[0])]
            return [self._merge_top_k(parts, k) if parts else EMPTY]
        per_segment = [searcher.search_csr(indptr, term_ids[s], weights, k, algorithm=params.algorithm,
                                           theta=params.theta, threads=params.threads, **scoring)
                       for s, searcher in enumerate(self.searchers)]
        if not per_segment:
            return [EMPTY] * n
        if len(per_segment) == 1:
            docs, scores, counts = per_segment[0]
            return [Hits(docs[q, :c], scores[q, :c]) for q, c in enumerate(counts.tolist())]
        return [self._merge_top_k([(d[q, :c[q]], s[q, :c[q]]) for d, s, c in per_segment], k) for q in range(n)]

    def _scoring(self, params: InvertedParams) -> dict[str, float]:
        """BM25 parameters: the given k1 and b, else the index's (stored lengths allow any); the average length
        of the snapshot or of the given collection statistics."""
        default = params.k1 is None and params.b is None and params.stats is None
        if default and self._default_scoring is not None:
            return self._default_scoring
        k1 = self.settings.get("k1", 0.9) if params.k1 is None else params.k1
        b = self.settings.get("b", 0.4) if params.b is None else params.b
        stats = params.stats
        avgdl = stats.sum_lengths / stats.num_docs if stats and stats.num_docs else self.avgdl
        scoring = {"k1": k1, "b": b, "avgdl": avgdl or 1.0}
        if default:
            self._default_scoring = scoring
        return scoring

    def _merge_top_k(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> Hits:
        """The top k of per-segment results (local doc numbers), as global doc numbers."""
        docnos = np.concatenate([p[0] + np.int32(base) for p, base in zip(parts, self.bases.tolist())])
        return topk.select(docnos, np.concatenate([p[1] for p in parts]), k)

    # --- documents -----------------------------------------------------------------------------

    def docno(self, doc_id: str) -> int:
        """Global doc number of a live document, or -1."""
        for s, seg in enumerate(self.segments):
            local = seg.ids.position(doc_id)
            if local >= 0 and (self.live[s] is None or self.live[s][local]):
                return int(self.bases[s] + local)
        return -1

    def stored(self, docnos: Iterable[int]) -> list[str]:
        """Stored documents (JSON strings) of global doc numbers."""
        docnos = np.fromiter(docnos, dtype=np.int64)
        if len(docnos) and (docnos.min() < 0 or docnos.max() >= self.num_docs):
            raise InputError(f"doc number out of range (index of {self.num_docs} documents)")
        seg, local = self.doc_ids.locate(docnos)
        out = []
        for s, i in zip(seg.tolist(), local.tolist()):
            docs = self.segments[s].docs
            if docs is None:
                raise IncompatibleIndexError(f"{self.path} was built without stored documents (store=False)")
            out.append(docs[i])
        return out


class IndexWriter(LockedWriter):
    """The one writer of an index directory (guarded by its lock).

    Documents added since the last commit are buffered and written as a new segment at `commit()` (or earlier,
    when the buffer fills). Adding an id that exists in an earlier commit replaces it; adding the same id twice
    before one commit is an error unless it was deleted in between. Operations apply in order, as in Lucene: a
    delete removes the documents with that id added before it (committed or not), and a document added after a
    delete of its id survives. Nothing is visible to readers, and nothing already committed is at risk, until
    `commit()` atomically replaces the manifest.

    `overwrite=True` starts a new index with `settings` in place of an existing one, which it replaces at the
    commit (readers keep the old one until then; a crash before it loses nothing).
    """

    def __init__(self, path: str | Path, settings: Mapping[str, Any] | None = None, *, overwrite: bool = False,
                 buffer_tokens: int = 20_000_000, merge_factor: int = 10):
        self.path = Path(path)
        self._lock = WriterLock(self.path)
        self._lock.acquire()
        try:
            exists = (self.path / commit.MANIFEST).exists()
            full = {**DEFAULT_SETTINGS, **(settings or {})}
            if not exists or overwrite:
                if full["mode"] not in MODES:
                    raise InputError(f"unknown index mode {full['mode']!r} (expected one of {MODES})")
                if full["impact_bits"] not in (8, 16):
                    raise InputError(f"impact_bits must be 8 or 16, got {full['impact_bits']!r}")
                if not isinstance(full["reorder"], bool):
                    raise InputError(f"reorder must be True or False, got {full['reorder']!r}")
            self.manifest = commit.start(self.path, FORMAT, FORMAT_VERSION, WHAT, full, overwrite)
            if exists and not overwrite and settings:
                self._check_settings(settings)
        except BaseException:
            self._lock.release()
            raise
        self.settings = self.manifest.settings
        self.buffer_tokens, self.merge_factor = buffer_tokens, merge_factor
        self._segments: dict[str, Segment] = {}  # opened segment files, by file name
        self._reset()

    def _reset(self) -> None:
        """Forget the uncommitted changes."""
        self._builder = self._new_builder()
        self._builder_dead: set[int] = set()  # buffered documents deleted after being added
        self._pending: list[tuple[str, Any, set[int]]] = []  # flushed this commit: (file name, FileRef, dead)
        self._pending_ids = _IdHashes()  # their ids' hashes
        self._deletes: set[str] = set()
        self._files: dict[str, Any] = {}  # index-level files set this commit, by role

    def _check_settings(self, settings: Mapping[str, Any]) -> None:
        current = self.manifest.settings
        for key, value in settings.items():
            if key in current and current[key] != value:
                raise IncompatibleIndexError(f"{self.path} was built with {key}={current[key]!r}, not {value!r}; "
                                             "open it without settings or build a new index")

    def _new_builder(self) -> SegmentBuilder:
        return SegmentBuilder(self.settings["mode"], self.settings["store"], self.settings["length_norm"],
                              self.settings.get("reorder", False))

    def _segment(self, ref: Any) -> Segment:
        """A segment file of this directory, opened once (its postings are verified before a merge decodes them)."""
        seg = self._segments.get(ref.name)
        if seg is None:
            seg = self._segments[ref.name] = Segment(self.path / ref.name, ref, check_hint(self.path))
        return seg

    # --- changes -------------------------------------------------------------------------------

    def add(self, doc_id: str, terms: Sequence[str] | Mapping[str, int], stored: str | None = None,
            location: str = "") -> None:
        """Buffer one document: its terms (bm25 mode) or term -> weight (impact mode)."""
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(f"{location + ': ' if location else ''}document id must be a non-empty string")
        self._builder.add(doc_id, terms, stored, location)
        if self._builder.num_tokens >= self.buffer_tokens:
            self._flush()

    def add_batch(self, doc_ids: list[str], terms: list[str | None], counts: Sequence[int],
                  stored: list[str] | None = None, locations: list[str] | None = None,
                  codes: np.ndarray | None = None) -> None:
        """Buffer many bm25 documents at once (see SegmentBuilder.add_batch): the fast path for indexing."""
        if self.settings["mode"] != "bm25":
            raise InputError("add_batch takes bm25 documents; add impact documents one by one with add()")
        check_doc_ids(doc_ids, locations)
        self._builder.add_batch(doc_ids, terms, counts, stored, locations, codes)
        if self._builder.num_tokens >= self.buffer_tokens:
            self._flush()

    def adopt(self, path: str | Path, impact_scale: float | None = None) -> int:
        """Add the documents of a segment file written elsewhere (`SegmentBuilder.write`, e.g. by a worker process)
        after everything added so far, as if they had been added here; return how many.

        The file is checked (checksums, structures, mode, length encoding, stored documents), its ids checked for
        duplicates as this writer's own are, then moved into the index directory under a generated name and listed
        at the next commit; until then a crash leaves it unlisted, and the next writer removes it. Impact segments
        must have been quantised with this index's scale: pass it as `impact_scale`."""
        self._flush()
        source = Path(path)
        seg = Segment(source)
        seg.verify()
        self._check_adoptable(seg, impact_scale)
        hashes = seg.ids.hashes()
        _check_unique_ids(seg.ids, hashes, f" (in {source})",
                          [(self._segment(ref), dead) for _, ref, dead in self._pending],
                          self._pending_ids.holding(hashes))
        self._pending_ids.add(hashes)
        name = new_name("seg", ".rsx")
        _move(source, self.path / name)
        ref = FileRef(name, seg.container.ref.size, seg.container.ref.crc)
        self._pending.append((name.removesuffix(".rsx"), ref, set()))
        return seg.num_docs

    def _check_adoptable(self, seg: Segment, impact_scale: float | None) -> None:
        settings = self.settings
        lucene_lengths = seg.length_table is not None
        problem = None
        if seg.mode != settings["mode"]:
            problem = f"it holds {seg.mode} postings, the index {settings['mode']} ones"
        elif seg.mode == "bm25" and lucene_lengths != (settings["length_norm"] == "lucene"):
            problem = f"its document lengths are {'lucene' if lucene_lengths else 'exact'}, the index's " \
                      f"{settings['length_norm']}"
        elif (seg.docs is not None) != bool(settings["store"]):
            problem = "it stores documents and the index does not" if seg.docs is not None else \
                "it does not store documents and the index does"
        elif seg.mode == "impact":
            if impact_scale is None:
                problem = "an impact segment needs the impact_scale it was quantised with"
            elif settings["impact_scale"] and settings["impact_scale"] != impact_scale:
                problem = f"it was quantised with impact_scale={impact_scale}, the index uses {settings['impact_scale']}"
            else:
                settings["impact_scale"] = impact_scale
        if problem:
            raise IncompatibleIndexError(f"segment file {seg.path} cannot join {self.path}: {problem}")

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Delete documents by id at the next commit: committed ones, and those added before this call (a later
        add of the same id survives); unknown ids are ignored."""
        ids = {d for d in doc_ids}
        self._deletes |= ids
        self._builder_dead.update(i for i, d in enumerate(self._builder.doc_ids) if d in ids)
        for name, ref, dead in self._pending:
            positions = self._segment(ref).ids.positions(ids)
            dead.update(positions[positions >= 0].tolist())

    def commit(self) -> None:
        """Make all changes durable and visible, then merge segments if the policy asks for it."""
        self._flush()
        manifest = self.manifest.copy()
        # Explicit deletes and re-added ids remove committed documents; the new segments keep their own
        # tombstones (documents deleted after they were added).
        added = [self._segment(ref).ids for _, ref, _ in self._pending]
        for entry in manifest.segments:
            self._delete_in(entry, self._segment(entry.files["data"]), self._deletes, added)
        for name, ref, dead in self._pending:
            entry = commit.Segment(name, {"data": ref}, self._segment(ref).num_docs)
            if dead:
                deleted = np.zeros(entry.num_docs, dtype=bool)
                deleted[sorted(dead)] = True
                self._set_tombstones(entry, deleted)
            manifest.segments.append(entry)
        manifest.segments = [s for s in manifest.segments if s.num_live > 0]  # nothing left: drop the segment
        manifest.files.update(self._files)
        self._publish(manifest)
        self._reset()
        self._maybe_merge()

    def _flush(self) -> None:
        if not len(self._builder):
            return
        builder, dead = self._builder, self._builder_dead
        self._builder, self._builder_dead = self._new_builder(), set()
        hashes = string_hashes(builder.doc_ids)
        check_unique(builder, dead, [(self._segment(ref), d) for _, ref, d in self._pending],
                     self._pending_ids.holding(hashes))
        self._pending_ids.add(hashes)
        if self.settings["mode"] == "impact" and not self.settings["impact_scale"]:
            self.settings["impact_scale"] = (builder.max_weight() or 1.0) / (2 ** self.settings["impact_bits"] - 1)
        file_name = new_name("seg", ".rsx")
        ref = builder.write(self.path / file_name, self.settings["impact_scale"] or 1.0, self.settings["impact_bits"])
        self._pending.append((file_name.removesuffix(".rsx"), ref, dead))

    def _delete_in(self, entry: commit.Segment, seg: Segment, doc_ids: set[str], tables: list[StringTable]) -> None:
        """Delete `doc_ids` and every id of `tables` from a committed segment (a new tombstone file if any goes)."""
        if not doc_ids and not tables:
            return
        live = read_tombstones(self.path / entry.deletes.name, entry.deletes, entry.num_docs) if entry.deletes \
            else np.ones(entry.num_docs, dtype=bool)
        deleted = ~live
        before = int(deleted.sum())
        positions = seg.ids.positions(doc_ids)
        deleted[positions[positions >= 0]] = True
        for table in tables:
            deleted[seg.ids.common(table)] = True
        if int(deleted.sum()) != before:
            self._set_tombstones(entry, deleted)

    def set_file(self, role: str, data: bytes, ext: str = ".json") -> None:
        """Store `data` as an index-level file named by the manifest under `role` from the next commit on
        (replacing any earlier one), e.g. a learned-sparse index's query weights."""
        path = self.path / new_name("file", ext)
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._files[role] = file_ref(path)

    def _set_tombstones(self, entry: commit.Segment, deleted: np.ndarray) -> None:
        entry.deletes = write_tombstones(self.path / new_name("del", ".rsx"), deleted)
        entry.num_deleted = int(deleted.sum())

    def _publish(self, manifest: Manifest) -> None:
        """Atomically make `manifest` the committed state, then remove files it no longer names."""
        self.manifest = commit.publish(self.path, manifest)
        self.settings = self.manifest.settings
        live = self.manifest.file_names()
        self._segments = {name: seg for name, seg in self._segments.items() if name in live}

    # --- merging -------------------------------------------------------------------------------

    def _maybe_merge(self) -> None:
        """Tiered policy: when more than `merge_factor` segments exist, merge the smallest ones together."""
        segments = self.manifest.segments
        if len(segments) > self.merge_factor:
            smallest = sorted(segments, key=lambda s: s.num_live)[:self.merge_factor]
            self._merge([s.name for s in smallest])

    def force_merge(self, max_segments: int = 1) -> None:
        """Merge until at most `max_segments` remain, dropping deleted documents."""
        self.commit()
        segments = sorted(self.manifest.segments, key=lambda s: s.num_live)
        if len(segments) > max_segments or (max_segments >= 1 and any(s.num_deleted for s in segments)):
            count = max(len(segments) - max_segments + 1, 1)
            names = [s.name for s in segments[:count]]
            if len(names) > 1 or any(s.num_deleted for s in segments[:count]):
                self._merge(names)

    def _merge(self, names: list[str]) -> None:
        entries = {s.name: s for s in self.manifest.segments}
        chosen = [entries[n] for n in names]
        segments = [self._segment(e.files["data"]) for e in chosen]
        lives = [read_tombstones(self.path / e.deletes.name, e.deletes, e.num_docs) if e.deletes else None
                 for e in chosen]
        merged = new_name("seg")
        ref = merge_segments(segments, lives, self.path / f"{merged}.rsx", self.settings["length_norm"],
                             self.settings.get("reorder", False))
        manifest = self.manifest.copy()
        first = min(i for i, s in enumerate(manifest.segments) if s.name in names)
        kept = [s for s in manifest.segments if s.name not in names]
        if sum(e.num_live for e in chosen):
            kept.insert(min(first, len(kept)), commit.Segment(merged, {"data": ref}, sum(e.num_live for e in chosen)))
        manifest.segments = kept
        self._publish(manifest)


def check_doc_ids(doc_ids: Sequence[str], locations: Sequence[str] | None = None) -> None:
    """InputError unless every id is a non-empty string (naming the document's location, when known)."""
    for i, doc_id in enumerate(doc_ids):
        if not isinstance(doc_id, str) or not doc_id:
            where = locations[i] + ": " if locations and locations[i] else ""
            raise InputError(f"{where}document id must be a non-empty string")


def _check_unique_ids(ids: StringTable, hashes: np.ndarray, where: str, pending: list[tuple[Segment, set[int]]],
                      suspects: np.ndarray) -> None:
    """InputError naming the first id that the table `ids` (with `hashes`, its strings' hashes) holds twice, or that a
    live document of `pending` holds (only the ids at `suspects` are looked up there). Ids are decoded only where
    hashes are equal."""
    ordered = np.sort(hashes)
    if np.any(ordered[1:] == ordered[:-1]):  # (a sort: faster than np.unique here)
        strings = ids.take(np.arange(len(ids)))
        if len(set(strings)) != len(strings):
            seen: set[str] = set()
            dup = next(d for d in strings if d in seen or seen.add(d))
            raise InputError(f"duplicate document id {dup!r}{where}")
    looked_up = ids.take(suspects)
    for seg, seg_dead in pending if looked_up else ():
        positions = seg.ids.positions(looked_up)
        found = [i for i in np.flatnonzero(positions >= 0).tolist() if int(positions[i]) not in seg_dead]
        if found:
            raise InputError(f"duplicate document id {looked_up[found[0]]!r}{where}")


class _IdHashes:
    """The hashes of the ids of the segments flushed in one commit, sorted: which new ids may repeat one of them,
    so that a flush looks up only those in each earlier segment, not all its ids in every one."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, np.uint64)

    def holding(self, hashes: np.ndarray) -> np.ndarray:
        """Positions of the `hashes` held here (equal ids, or a collision), in increasing order."""
        if not len(self._sorted):
            return np.empty(0, np.int64)
        order = np.argsort(hashes)  # searched in order: the binary searches walk the table forwards
        at = np.minimum(np.searchsorted(self._sorted, hashes[order]), len(self._sorted) - 1)
        return np.sort(order[self._sorted[at] == hashes[order]])

    def add(self, hashes: np.ndarray) -> None:
        self._sorted = np.sort(np.concatenate([self._sorted, np.sort(hashes)]), kind="stable")  # two runs: a merge


def _move(source: Path, target: Path) -> None:
    """Move a file into the index directory: a rename on one file system, else a copy (fsynced) and a delete."""
    try:
        os.rename(source, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, target)
        with open(target, "rb+") as f:
            os.fsync(f.fileno())
        source.unlink()


def check_unique(builder: SegmentBuilder, dead: set[int], pending: list[tuple[Segment, set[int]]],
                 suspects: np.ndarray | None = None) -> None:
    """Ids must be unique among the live documents of one commit (only the builder's ids at `suspects` are looked
    up in `pending`, when given)."""
    alive = np.ones(len(builder.doc_ids), dtype=bool)
    alive[list(dead)] = False
    live_positions = np.flatnonzero(alive)
    live_ids = builder.doc_ids if not dead else [builder.doc_ids[i] for i in live_positions.tolist()]
    if len(set(live_ids)) != len(live_ids):  # (a set: faster than sorting strings; sorted only to name one)
        ids = np.array(builder.doc_ids, dtype=object)
        order = live_positions[np.argsort(ids[live_positions], kind="stable")]
        sorted_ids = ids[order]
        dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
        first, second = order[dup[0]], order[dup[0] + 1]
        where = [builder.doc_locations[i] for i in (first, second)]
        detail = f" (at {where[0]} and {where[1]})" if all(where) else ""
        raise InputError(f"duplicate document id {sorted_ids[dup[0]]!r}{detail}")
    suspects = live_positions if suspects is None else suspects[alive[suspects]]
    looked_up = [builder.doc_ids[i] for i in suspects.tolist()]
    for seg, seg_dead in pending if looked_up else ():
        positions = seg.ids.positions(looked_up)
        found = [int(suspects[i]) for i in np.flatnonzero(positions >= 0).tolist()
                 if int(positions[i]) not in seg_dead]
        if found:
            where, doc_id = builder.doc_locations[found[0]], builder.doc_ids[found[0]]
            raise InputError(f"{where + ': ' if where else ''}duplicate document id {doc_id!r}")
