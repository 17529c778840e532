"""Durable file operations for index directories: atomic writes, fsync, memory-mapped arrays, a writer lock."""

from __future__ import annotations

import fcntl
import json
import mmap as _mmap
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rankstack.errors import IndexFormatError, InputError, RankstackError


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


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{path} is corrupt ({e})") from None


def clear_for_build(path: str | Path, overwrite: bool, stage: str) -> Path:
    """`path` ready for a new index: one already there is an InputError unless `overwrite` removes it."""
    path = Path(path)
    if (path / "manifest.json").exists():
        if not overwrite:
            raise InputError(f"{path} already holds an index; pass overwrite=True to replace it, "
                             f"or open it with {stage}(path) and add() documents")
        shutil.rmtree(path)
    return path


def save_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write each array as `<name>.npy` and fsync it (the caller fsyncs the directory)."""
    for name, array in arrays.items():
        with open(directory / f"{name}.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())


def load_array(directory: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = directory / f"{name}.npy"
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if mmap and hasattr(_mmap, "MADV_RANDOM"):  # POSIX only
            # Searches read index pages at random (a query's postings, its hits' ids): no readahead, so that the
            # page cache holds only the pages searches touch.
            array._mmap.madvise(_mmap.MADV_RANDOM)
        # A plain ndarray view of the memory map: same pages, without np.memmap's per-slice overhead.
        return np.asarray(array)
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: the index is incomplete or was not written by rankstack") from None
    except ValueError as e:
        if "mmap length is greater than file size" in str(e) or "cannot mmap an empty file" in str(e) or mmap:
            try:  # tiny or empty arrays cannot be memory-mapped; read them instead
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e2:
                raise IndexFormatError(f"{path} is corrupt ({e2})") from None
        raise IndexFormatError(f"{path} is corrupt ({e})") from None


class WriterLock:
    """An exclusive, process-wide lock on an index directory, held by its one writer."""

    def __init__(self, directory: Path):
        self.path = directory / "write.lock"
        self._file = None

    def acquire(self) -> None:
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


class LockedWriter:
    """The lifecycle every index writer shares: `with Writer(...) as w:` commits on a clean exit and always
    releases the directory's WriterLock (`self._lock`); uncommitted changes are discarded on close."""

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


def open_snapshot(read_manifest: Callable[[], dict], open_files: Callable[[dict], None]) -> dict:
    """Open the files a manifest names and return the manifest; if a concurrent commit or merge removed them in
    between (IndexFormatError while the manifest's generation moved on), read the new manifest and try again."""
    for attempt in range(3):
        manifest = read_manifest()
        try:
            open_files(manifest)
            return manifest
        except IndexFormatError:
            if attempt == 2 or read_manifest()["generation"] == manifest["generation"]:
                raise
