"""The inverted index: a manifest naming immutable segments and their tombstones.

Reading: `InvertedIndex(path)` opens a consistent snapshot (the manifest as committed when opened)
and searches all its segments with global statistics. Writing: `IndexWriter(path)` adds documents
as new segments, deletes by id with tombstones, merges segments, and commits by atomically
replacing the manifest, so a crash at any moment leaves the last commit intact.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.index.query import SegmentSearcher
from rankstack.index.segment import MODES, Segment, SegmentBuilder, merge_segments, remove_segment
from rankstack.index.strings import StringTable
from rankstack.index.storage import (LockedWriter, WriterLock, fsync_dir, open_snapshot, read_json, save_arrays,
                                     write_json_atomic)

FORMAT = "rankstack-inverted-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ALGORITHMS = ("maxscore", "bmw", "exhaustive")
TERM_CACHE = 1 << 20  # terms whose lookups a snapshot remembers (then it starts over)
# impact_scale None: set at the first flush so that the largest weight seen maps to the top quantum.
DEFAULT_SETTINGS = {"mode": "bm25", "k1": 0.9, "b": 0.4, "length_norm": "lucene", "impact_bits": 8,
                    "impact_scale": None,
                    "store": True, "metadata": {}}

Query = Mapping[str, float]  # term -> count (bm25) or weight (impact)


def _empty_manifest(settings: dict) -> dict:
    return {"format": FORMAT, "version": FORMAT_VERSION, "generation": 0, "settings": settings, "segments": []}


def read_manifest(path: Path) -> dict:
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise IndexFormatError(f"{path} is not an index directory (it does not exist)")
    if not manifest_path.exists():
        raise IndexFormatError(f"{path} has no {MANIFEST}: not an index, or one whose first commit never finished")
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{manifest_path} is not a rankstack inverted index manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path} has index format version {manifest.get('version')}; this rankstack "
                               f"reads version {FORMAT_VERSION}: rebuild the index")
    return manifest


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


class InvertedIndex:
    """A read-only snapshot of an index directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()
        self.manifest = open_snapshot(lambda: read_manifest(self.path), self._open)  # retried if a merge races

    def _open(self, manifest: dict) -> None:
        self.settings: dict[str, Any] = manifest["settings"]
        self.generation: int = manifest["generation"]
        self.segments = [Segment(self.path / s["name"]) for s in manifest["segments"]]
        self.live = [self._load_tombstones(s) for s in manifest["segments"]]
        self.bases = np.zeros(len(self.segments) + 1, dtype=np.int64)
        np.cumsum([s.num_docs for s in self.segments], out=self.bases[1:])
        self.doc_ids = IndexDocIds(self.segments, self.bases)
        # Like Lucene, statistics count deleted documents until a merge removes them.
        self.num_docs = int(self.bases[-1])
        self.num_deleted = sum(s.get("num_deleted", 0) for s in manifest["segments"])
        self.sum_lengths = sum(s.meta["sum_lengths"] for s in self.segments)
        self.searchers = [SegmentSearcher(seg.postings, seg.length_codes, live, seg.length_table)
                          for seg, live in zip(self.segments, self.live)]
        self._terms: dict[str, tuple[float, tuple[int, ...]]] = {}  # see _term_info

    def _load_tombstones(self, entry: dict) -> np.ndarray | None:
        if not entry.get("deletes"):
            return None
        try:
            return ~np.load(self.path / entry["deletes"], allow_pickle=False)
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"tombstone file {entry['deletes']} of {self.path} is missing or corrupt ({e})") \
                from None

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

    # --- statistics and weights ----------------------------------------------------------------

    def document_frequency(self, term: str) -> int:
        df = 0
        for seg in self.segments:
            t = seg.terms.position(term)
            if t >= 0:
                df += int(seg.term_df[t])
        return df

    def idf(self, df: np.ndarray) -> np.ndarray:
        """Lucene's BM25 idf of document frequencies, as float32."""
        df = np.asarray(df, dtype=np.float64)
        return np.log(1 + (self.num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)

    def _term_info(self, terms: list[str]) -> list[tuple[float, tuple[int, ...]]]:
        """Per term: (its weight per unit of query weight: the idf in BM25 mode, the impact scale
        otherwise; its term id in each segment, -1 where absent). Cached: the snapshot never changes."""
        cache = self._terms
        known = {t: cache.get(t) for t in terms}  # (read once: another thread may clear the cache meanwhile)
        missing = [t for t, info in known.items() if info is None]
        if missing:
            positions = np.array([seg.terms.positions(missing) for seg in self.segments]).reshape(-1, len(missing))
            if self.mode == "bm25":
                dfs = sum((np.where(pos >= 0, seg.term_df[pos], 0) for seg, pos in zip(self.segments, positions)),
                          np.zeros(len(missing), np.int64))
                factors = self.idf(dfs).tolist()
            else:
                factors = [float(self.settings["impact_scale"])] * len(missing)
            fresh = dict(zip(missing, zip(factors, map(tuple, positions.T.tolist()))))
            known.update(fresh)
            if len(cache) + len(fresh) > TERM_CACHE:
                cache.clear()
            cache.update(fresh)
        return [known[t] for t in terms]

    def _segment_queries(self, query: Query) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segment: (term ids, float32 weights) of the query's terms present in that segment."""
        terms = [t for t, w in query.items() if w > 0]
        infos = self._term_info(terms)
        weights = [factor * query[t] for t, (factor, _) in zip(terms, infos)]
        out = []
        for s in range(len(self.segments)):
            present = [(pos[s], w) for (_, pos), w in zip(infos, weights) if pos[s] >= 0]
            out.append((np.array([p for p, _ in present], np.int32), np.array([w for _, w in present], np.float32)))
        return out

    # --- search --------------------------------------------------------------------------------

    def search(self, query: Query, k: int = 10, algorithm: str = "maxscore", theta: float = 1.0,
               k1: float | None = None, b: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (global doc numbers, scores) for a bag of query terms, best first, ties by doc number.
        BM25's `k1` and `b` default to the index's settings."""
        if not 1 <= k <= 1_000_000:
            raise InputError(f"k must be between 1 and 1,000,000, got {k}")
        scoring = self._scoring(k1, b)
        parts = [searcher.search(term_ids, weights, k, algorithm=algorithm, theta=theta, **scoring)
                 for searcher, (term_ids, weights) in zip(self.searchers, self._segment_queries(query))]
        return self._merge_top_k(parts, k)

    def _scoring(self, k1: float | None = None, b: float | None = None) -> dict[str, float]:
        """BM25 parameters: the given k1 and b, else the index's (stored lengths allow any)."""
        k1 = self.settings.get("k1", 0.9) if k1 is None else k1
        b = self.settings.get("b", 0.4) if b is None else b
        return {"k1": k1, "b": b, "avgdl": self.avgdl or 1.0}

    def search_batch(self, queries: Sequence[Query], k: int = 10, algorithm: str = "maxscore",
                     theta: float = 1.0, threads: int | None = None, k1: float | None = None,
                     b: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Search many queries; `threads` (default: all cores) share them across segments' kernels."""
        if algorithm not in ALGORITHMS:
            raise InputError(f"unknown search algorithm {algorithm!r} (expected one of {ALGORITHMS})")
        if not 1 <= k <= 1_000_000:
            raise InputError(f"k must be between 1 and 1,000,000, got {k}")
        per_query = [self._segment_queries(q) for q in queries]
        per_segment = [searcher.search_batch([pq[s] for pq in per_query], k, algorithm=algorithm, theta=theta,
                                             threads=threads, **self._scoring(k1, b))
                       for s, searcher in enumerate(self.searchers)]
        return [self._merge_top_k(parts, k) for parts in zip(*per_segment)] if per_segment else \
            [self._merge_top_k([], k) for _ in queries]

    def _merge_top_k(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k of per-segment results (local doc numbers), as global doc numbers."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        docnos = np.concatenate([p[0].astype(np.int64) + base for p, base in zip(parts, self.bases.tolist())])
        scores = np.concatenate([p[1] for p in parts])
        order = np.lexsort((docnos, -scores))[:k]
        return docnos[order].astype(np.int32), scores[order]

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
        seg, local = self.doc_ids.locate(np.fromiter(docnos, dtype=np.int64))
        out = []
        for s, i in zip(seg.tolist(), local.tolist()):
            docs = self.segments[s].docs
            if docs is None:
                raise IncompatibleIndexError(f"{self.path} was built without stored documents (store=False)")
            out.append(docs[i])
        return out


class IndexWriter(LockedWriter):
    """The one writer of an index directory (guarded by a lock file).

    Documents added since the last commit are buffered and written as a new segment at `commit()`
    (or earlier, when the buffer fills). Adding an id that exists in an earlier commit replaces it;
    adding the same id twice before one commit is an error. Nothing is visible to readers, and
    nothing already committed is at risk, until `commit()` atomically replaces the manifest.
    """

    def __init__(self, path: str | Path, settings: Mapping[str, Any] | None = None, *,
                 buffer_tokens: int = 20_000_000, merge_factor: int = 10):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = WriterLock(self.path)
        self._lock.acquire()
        try:
            if (self.path / MANIFEST).exists():
                self.manifest = read_manifest(self.path)
                if settings:
                    self._check_settings(settings)
            else:
                full = {**DEFAULT_SETTINGS, **(settings or {})}
                if full["mode"] not in MODES:
                    raise InputError(f"unknown index mode {full['mode']!r} (expected one of {MODES})")
                if full["impact_bits"] not in (8, 16):
                    raise InputError(f"impact_bits must be 8 or 16, got {full['impact_bits']!r}")
                self.manifest = _empty_manifest(full)
            self._remove_uncommitted()
        except BaseException:
            self._lock.release()
            raise
        self.settings = self.manifest["settings"]
        self.buffer_tokens, self.merge_factor = buffer_tokens, merge_factor
        self._builder = self._new_builder()
        self._pending: list[dict] = []  # segments written since the last commit
        self._deletes: set[str] = set()

    def _check_settings(self, settings: Mapping[str, Any]) -> None:
        current = self.manifest["settings"]
        for key, value in settings.items():
            if key in current and current[key] != value:
                raise IncompatibleIndexError(f"{self.path} was built with {key}={current[key]!r}, not {value!r}; "
                                             "open it without settings or build a new index")

    def _new_builder(self) -> SegmentBuilder:
        return SegmentBuilder(self.settings["mode"], self.settings["store"], self.settings["length_norm"])

    def _remove_uncommitted(self) -> None:
        """Delete files a crashed writer left behind: anything the manifest does not name."""
        named = {s["name"] for s in self.manifest["segments"]} | {s.get("deletes") for s in self.manifest["segments"]}
        for child in self.path.iterdir():
            if child.name in (MANIFEST, "write.lock") or child.name in named:
                continue
            if child.name.startswith(("seg_", "del_")) or child.name.endswith(".tmp"):
                if child.is_dir():
                    remove_segment(child)
                else:
                    child.unlink()

    # --- changes -------------------------------------------------------------------------------

    def add(self, doc_id: str, terms: Sequence[str] | Mapping[str, int], stored: str | None = None,
            location: str = "") -> None:
        """Buffer one document: its terms (bm25 mode) or term -> weight (impact mode)."""
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(f"{location + ': ' if location else ''}document id must be a non-empty string")
        self._builder.add(doc_id, terms, stored, location)
        if self._builder.num_tokens >= self.buffer_tokens:
            self._flush()

    def add_batch(self, doc_ids: list[str], terms: list[str | None], counts: list[int],
                  stored: list[str] | None = None, locations: list[str] | None = None) -> None:
        """Buffer many bm25 documents at once (see SegmentBuilder.add_batch): the fast path for indexing."""
        if self.settings["mode"] != "bm25":
            raise InputError("add_batch takes bm25 documents; add impact documents one by one with add()")
        for i, doc_id in enumerate(doc_ids):
            if not isinstance(doc_id, str) or not doc_id:
                where = locations[i] + ": " if locations and locations[i] else ""
                raise InputError(f"{where}document id must be a non-empty string")
        self._builder.add_batch(doc_ids, terms, counts, stored, locations)
        if self._builder.num_tokens >= self.buffer_tokens:
            self._flush()

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Mark documents deleted at the next commit; unknown ids are ignored."""
        self._deletes.update(doc_ids)

    def commit(self) -> None:
        """Make all changes durable and visible, then merge segments if the policy asks for it."""
        self._flush()
        manifest = json.loads(json.dumps(self.manifest))
        new_entries = [{"name": m["name"], "num_docs": m["num_docs"], "num_deleted": 0, "deletes": None}
                       for m in self._pending]
        # Re-added ids replace their earlier versions; explicit deletes hit every segment.
        added = [Segment(self.path / m["name"]).ids for m in self._pending]
        self._apply_deletes(manifest["segments"], self._deletes, added)
        self._apply_deletes(new_entries, self._deletes, [])
        manifest["segments"] += new_entries
        self._publish(manifest)
        self._pending, self._deletes = [], set()
        self._maybe_merge()

    def _flush(self) -> None:
        if not len(self._builder):
            return
        builder, self._builder = self._builder, self._new_builder()
        _check_unique(builder, [Segment(self.path / m["name"]) for m in self._pending])
        if self.settings["mode"] == "impact" and not self.settings["impact_scale"]:
            self.settings["impact_scale"] = (builder.max_weight() or 1.0) / (2 ** self.settings["impact_bits"] - 1)
        name = f"seg_{uuid.uuid4().hex[:12]}"
        meta = builder.write(self.path / name, self.settings["impact_scale"] or 1.0, self.settings["impact_bits"])
        fsync_dir(self.path)
        self._pending.append({"name": name, **meta})

    def _apply_deletes(self, entries: list[dict], doc_ids: set[str], tables: list[StringTable]) -> None:
        """Delete `doc_ids` and every id of `tables` from the entries' segments, writing new tombstone
        files for those that lose documents (entries are updated in place)."""
        if not doc_ids and not tables:
            return
        for entry in entries:
            seg = Segment(self.path / entry["name"])
            deleted = (np.load(self.path / entry["deletes"]) if entry.get("deletes")
                       else np.zeros(seg.num_docs, dtype=bool))
            before = int(deleted.sum())
            positions = seg.ids.positions(doc_ids)
            deleted[positions[positions >= 0]] = True
            for table in tables:
                deleted[seg.ids.common(table)] = True
            if int(deleted.sum()) != before:
                name = f"del_{uuid.uuid4().hex[:12]}"
                save_arrays(self.path, {name: deleted})
                entry["deletes"], entry["num_deleted"] = name + ".npy", int(deleted.sum())

    def _publish(self, manifest: dict) -> None:
        """Atomically make `manifest` the committed state, then remove files it no longer names."""
        manifest["generation"] += 1
        fsync_dir(self.path)
        write_json_atomic(self.path / MANIFEST, manifest)
        self.manifest, self.settings = manifest, manifest["settings"]
        self._remove_uncommitted()

    # --- merging -------------------------------------------------------------------------------

    def _maybe_merge(self) -> None:
        """Tiered policy: when more than `merge_factor` segments exist, merge the smallest ones together."""
        segments = self.manifest["segments"]
        if len(segments) > self.merge_factor:
            smallest = sorted(segments, key=lambda s: s["num_docs"] - s["num_deleted"])[:self.merge_factor]
            self._merge([s["name"] for s in smallest])

    def force_merge(self, max_segments: int = 1) -> None:
        """Merge until at most `max_segments` remain, dropping deleted documents."""
        self.commit()
        segments = sorted(self.manifest["segments"], key=lambda s: s["num_docs"] - s["num_deleted"])
        if len(segments) > max_segments or (max_segments >= 1 and any(s["num_deleted"] for s in segments)):
            count = max(len(segments) - max_segments + 1, 1)
            names = [s["name"] for s in segments[:count]]
            if len(names) > 1 or any(s["num_deleted"] for s in segments[:count]):
                self._merge(names)

    def _merge(self, names: list[str]) -> None:
        entries = {s["name"]: s for s in self.manifest["segments"]}
        segments = [Segment(self.path / name) for name in names]
        lives = [(~np.load(self.path / entries[n]["deletes"])) if entries[n].get("deletes") else None for n in names]
        merged = f"seg_{uuid.uuid4().hex[:12]}"
        meta = merge_segments(segments, lives, self.path / merged, self.settings["length_norm"])
        fsync_dir(self.path)
        manifest = json.loads(json.dumps(self.manifest))
        first = min(i for i, s in enumerate(manifest["segments"]) if s["name"] in names)
        kept = [s for s in manifest["segments"] if s["name"] not in names]
        kept.insert(min(first, len(kept)), {"name": merged, "num_docs": meta["num_docs"], "num_deleted": 0,
                                            "deletes": None})
        manifest["segments"] = kept
        self._publish(manifest)


def _check_unique(builder: SegmentBuilder, pending: list[Segment]) -> None:
    """Ids must be unique among the documents of one commit."""
    ids = np.array(builder.doc_ids, dtype=object)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if len(dup):
        first, second = order[dup[0]], order[dup[0] + 1]
        where = [builder.doc_locations[i] for i in (first, second)]
        detail = f" (at {where[0]} and {where[1]})" if all(where) else ""
        raise InputError(f"duplicate document id {sorted_ids[dup[0]]!r}{detail}")
    for seg in pending:
        found = np.flatnonzero(seg.ids.positions(builder.doc_ids) >= 0)
        if len(found):
            where, doc_id = builder.doc_locations[found[0]], builder.doc_ids[found[0]]
            raise InputError(f"{where + ': ' if where else ''}duplicate document id {doc_id!r}")
