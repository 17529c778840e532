"""A score cache for rerankers: scores keyed by (model, query, document text), in memory and optionally in SQLite."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Sequence

from rankstack.errors import InputError

_SQL_CHUNK = 500  # keys per SELECT (SQLite limits bound parameters)


class ScoreCache:
    """Scores of (query, document) pairs for one model configuration `model_key`.

    Kept in memory; with `path`, also in a SQLite file shared across runs and processes (several models may
    share a file: keys include the model). Keys are 16-byte BLAKE2b digests of the model key, query and text.
    """

    def __init__(self, model_key: str, path: str | os.PathLike | None = None):
        self._salt = model_key.encode("utf-8")
        self._memory: dict[bytes, float] = {}
        self.path = None if path is None else Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS scores (key BLOB PRIMARY KEY, score REAL NOT NULL)")
                self._db.commit()
            except sqlite3.Error as e:
                raise InputError(f"cannot open the score cache: {e}", self.path) from e

    def key(self, query: str, text: str) -> bytes:
        h = hashlib.blake2b(self._salt, digest_size=16)
        h.update(b"\0%d\0" % len(query))  # lengths make the (query, text) split unambiguous
        h.update(query.encode("utf-8", "surrogatepass"))
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, float]:
        """The cached scores of those `keys` that are cached."""
        memory = self._memory
        found = {k: memory[k] for k in keys if k in memory}
        if self._db is not None:
            missing = [k for k in dict.fromkeys(keys) if k not in found]
            with self._lock:
                for start in range(0, len(missing), _SQL_CHUNK):
                    chunk = missing[start:start + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(f"SELECT key, score FROM scores WHERE key IN ({marks})", chunk).fetchall()
                    found.update(rows)
                    memory.update(rows)
        return found

    def put_many(self, items: Iterable[tuple[bytes, float]]) -> None:
        items = list(items)
        self._memory.update(items)
        if self._db is not None:
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", items)
                self._db.commit()

    def clear(self) -> None:
        """Forget the in-memory scores (the SQLite file, if any, is kept)."""
        self._memory.clear()

    def __len__(self) -> int:
        return len(self._memory)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
