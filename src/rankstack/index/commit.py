"""Index directories: one typed manifest, one publish step, one writer lock and consistent snapshots, shared by
every index type (inverted, dense, PLAID, Seismic).

- `manifest.json` holds the format and version, a generation number, a commit id (the index's content identity:
  new at every commit, also when a rebuild starts over at generation 1), settings, index-level files, and the
  segments, each listing the files it owns with their sizes and checksums (tantivy's `SegmentMeta::list_files`,
  Lucene's `SegmentInfos`) and its tombstones. The manifest carries its own checksum.
- Files that commits write have generated names (`<kind>_<12 hex digits>[.ext]`) and are never rewritten.
- `publish` is the only way a commit becomes visible: the writer has written and fsynced every new file; the
  directory is fsynced, the manifest written to a temporary file, fsynced and renamed over the old one, the
  directory fsynced again; then every generated file that the new manifest does not list is removed, so a
  killed writer or rebuild leaves nothing behind once the next commit (or writer) runs.
- One writer at a time: `WriterLock`, taken by every write path, rebuilds with overwrite included.
- Readers open a snapshot and, when a concurrent commit removed its files meanwhile, read the new manifest and
  open again, until one opens consistently (bounded by time, not by a count of tries).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

from rankstack.errors import IndexFormatError, InputError, RankstackError
from rankstack.index.container import FileRef, crc32

MANIFEST = "manifest.json"
LOCK = "write.lock"
GENERATED = re.compile(r"^[a-z]+_[0-9a-f]{12}(\.[a-z0-9]+)?$")
SNAPSHOT_TIMEOUT = 30.0  # seconds a reader keeps retrying while commits keep replacing the files it opens

T = TypeVar("T")


def check_hint(path: Path) -> str:
    """The advice appended to an error about a damaged index file."""
    return f"; run `rankstack check {path}` to check the whole index"


def new_name(kind: str, ext: str = "") -> str:
    """A fresh generated file name, e.g. new_name("seg", ".rsx") -> "seg_3f9a0c12d4e5.rsx"."""
    return f"{kind}_{uuid.uuid4().hex[:12]}{ext}"


@dataclass
class Segment:
    """A manifest's entry for one segment: its files by role, documents, tombstones and metadata."""

    name: str
    files: dict[str, FileRef]
    num_docs: int
    deletes: FileRef | None = None
    num_deleted: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_live(self) -> int:
        return self.num_docs - self.num_deleted

    def file_names(self) -> set[str]:
        return {f.name for f in self.files.values()} | ({self.deletes.name} if self.deletes else set())

    def to_json(self) -> dict:
        return {"name": self.name, "files": {k: f.to_json() for k, f in self.files.items()},
                "num_docs": self.num_docs, "deletes": self.deletes.to_json() if self.deletes else None,
                "num_deleted": self.num_deleted, "meta": self.meta}

    @classmethod
    def from_json(cls, d: Any) -> "Segment":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("meta"), dict):
            raise ValueError(f"bad segment entry {d!r:.200}")
        num_docs, num_deleted = d["num_docs"], d["num_deleted"]
        if not (isinstance(num_docs, int) and isinstance(num_deleted, int) and 0 <= num_deleted <= num_docs):
            raise ValueError(f"bad document counts in segment {d['name']!r}")
        return cls(d["name"], {k: FileRef.from_json(v) for k, v in d["files"].items()}, num_docs,
                   FileRef.from_json(d["deletes"]) if d["deletes"] is not None else None, num_deleted, d["meta"])


@dataclass
class Manifest:
    """The committed state of an index directory (see the module docstring)."""

    format: str
    version: int
    settings: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    files: dict[str, FileRef] = field(default_factory=dict)  # index-level files by role (a codec, a table)
    generation: int = 0
    commit: str = ""

    @property
    def num_docs(self) -> int:
        return sum(s.num_docs for s in self.segments)

    @property
    def num_live(self) -> int:
        return sum(s.num_live for s in self.segments)

    def file_names(self) -> set[str]:
        names = {f.name for f in self.files.values()}
        for s in self.segments:
            names |= s.file_names()
        return names

    def copy(self) -> "Manifest":
        return Manifest.from_json(json.loads(json.dumps(self.to_json())))

    def started_over(self, settings: dict[str, Any]) -> "Manifest":
        """An empty manifest with new settings that continues this one's generations (a rebuild)."""
        return replace(self, settings=settings, segments=[], files={})

    def to_json(self) -> dict:
        return {"format": self.format, "version": self.version, "generation": self.generation,
                "commit": self.commit, "settings": self.settings,
                "files": {k: f.to_json() for k, f in self.files.items()},
                "segments": [s.to_json() for s in self.segments]}

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        generation, commit = d["generation"], d["commit"]
        if not isinstance(generation, int) or not isinstance(commit, str) or not isinstance(d["settings"], dict):
            raise ValueError("bad generation, commit or settings")
        return cls(d["format"], d["version"], d["settings"], [Segment.from_json(s) for s in d["segments"]],
                   {k: FileRef.from_json(v) for k, v in d["files"].items()}, generation, commit)


def _checksum(body: dict) -> int:
    return crc32(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def read_manifest(path: Path, format: str, version: int, what: str) -> Manifest:
    """The manifest of the index at `path`, checked: an IndexFormatError says what is wrong (`what` names the
    index type in messages, e.g. "dense index")."""
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise IndexFormatError(f"{path} is not an index directory (it does not exist)")
    try:
        text = manifest_path.read_bytes()
    except FileNotFoundError:
        raise IndexFormatError(f"{path} has no {MANIFEST}: not an index, or one whose first commit never "
                               "finished") from None
    except OSError as e:
        raise IndexFormatError(f"{manifest_path} cannot be read ({e.strerror})") from None
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{manifest_path} is damaged (not JSON: {e}){check_hint(path)}") from None
    if not isinstance(body, dict) or body.get("format") != format:
        found = body.get("format") if isinstance(body, dict) else type(body).__name__
        raise IndexFormatError(f"{manifest_path} is not a rankstack {what} manifest (format {found!r})")
    if body.get("version") != version:
        raise IndexFormatError(f"{path} holds a {what} of format version {body.get('version')!r}; this rankstack "
                               f"reads version {version}: rebuild the index")
    stored = body.pop("checksum", None)
    if stored != _checksum(body):
        raise IndexFormatError(f"{manifest_path} is damaged (it fails its checksum){check_hint(path)}")
    try:
        return Manifest.from_json(body)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise IndexFormatError(f"{manifest_path} is malformed ({e}){check_hint(path)}") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def publish(path: Path, manifest: Manifest) -> Manifest:
    """Make `manifest` the committed state of `path` (its files already written and fsynced) and remove the files
    it no longer lists; returns it with its new generation and commit id."""
    fsync_dir(path)
    published = replace(manifest, generation=manifest.generation + 1, commit=uuid.uuid4().hex)
    body = published.to_json()
    body["checksum"] = _checksum(body)
    write_atomic(path / MANIFEST, json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8"))
    sweep(path, published)
    return published


def sweep(path: Path, manifest: Manifest | None) -> None:
    """Remove the generated files (and temporary files) of `path` that `manifest` does not list. Readers that
    mapped them keep their mappings; readers that had not opened them yet retry with the new manifest."""
    keep = manifest.file_names() if manifest is not None else set()
    for child in path.iterdir():
        if child.name in keep or not (GENERATED.match(child.name) or child.name.endswith(".tmp")):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


class WriterLock:
    """An exclusive lock on an index directory, held by its one writer (any process)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK
        self._file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            raise RankstackError(f"{self.path.parent} is already open for writing by another writer") from None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def start(path: Path, format: str, version: int, what: str, settings: dict[str, Any] | None,
          overwrite: bool) -> Manifest:
    """The manifest a writer starts from, under its lock: the committed one; with `overwrite`, an empty one with
    `settings` that replaces it at the next publish (until then readers keep the old index, and a crash loses
    nothing); for a new directory, an empty one with `settings`. Removes what a crashed writer left behind."""
    if not (path / MANIFEST).exists():
        sweep(path, None)
        return Manifest(format, version, dict(settings or {}))
    committed = read_manifest(path, format, version, what)
    sweep(path, committed)
    return committed.started_over(dict(settings or {})) if overwrite else committed


def refuse_existing(path: Path, overwrite: bool, stage: str) -> None:
    """InputError when `path` holds an index and `overwrite` is not set."""
    if (Path(path) / MANIFEST).exists() and not overwrite:
        raise InputError(f"{path} already holds an index; pass overwrite=True (--overwrite on the command line) "
                         f"to replace it, or open it with {stage}(path) and add() documents")


def open_snapshot(path: Path, read: Callable[[], Manifest], open_files: Callable[[Manifest], T],
                  timeout: float = SNAPSHOT_TIMEOUT) -> T:
    """`open_files(manifest)` for a consistent snapshot: when opening fails while commits replace the manifest,
    read the new one and try again (for up to `timeout` seconds); a failure under an unchanged manifest is
    raised as it is (the index is damaged)."""
    deadline = time.monotonic() + timeout
    while True:
        manifest = read()
        try:
            return open_files(manifest)
        except IndexFormatError:
            if read().commit == manifest.commit:
                raise
            if time.monotonic() > deadline:
                raise RankstackError(f"{path} changed under every attempt to open it for {timeout:.0f} s: "
                                     "commits replace it faster than it opens") from None


_VERIFY = threading.Lock()  # first verifications are rare: one lock serves every snapshot


class Snapshot:
    """What every index snapshot (a reader) shares: its manifest, its content identity and a verification of its
    files done once. Subclasses set `manifest` and implement `_verify`."""

    manifest: Manifest
    _verified = False

    @property
    def commit_id(self) -> str:
        """The identity of this snapshot's content: new at every commit (add, delete, merge, rebuild)."""
        return self.manifest.commit

    def verify(self) -> None:
        """Check every checksum and every structure search relies on, once per snapshot (IndexFormatError naming
        what is wrong); searches call it before they first read the files."""
        if self._verified:
            return
        with _VERIFY:
            if not self._verified:
                self._verify()
                self._verified = True

    def _verify(self) -> None:
        raise NotImplementedError


class LockedWriter:
    """The lifecycle every index writer shares: `with Writer(...) as w:` commits on a clean exit and always
    releases the directory's lock; uncommitted changes are discarded on close."""

    _lock: WriterLock

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the lock. Uncommitted changes are discarded (call commit() first)."""
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()
