"""On-disk caching of stage outputs, keyed by the stage's configuration and content identity (the commit ids of the
indexes it reads, its models' revisions: `Stage.identity`), the query and its input.

    cached = Cached(bm25 % 100, "cache/")      # or pipeline.cached("cache/") to cache every stage
    run = cached(queries)                        # computes and stores
    run = cached(queries)                        # reads back: identical run, nothing recomputed
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import IdList, Run
from rankstack.pipeline.stage import Pipeline, Stage


def stage_key(stage: Stage) -> str:
    """A digest of what determines a stage's output: its class, configuration and content identity (so that an
    add, delete, merge or rebuild of an index it reads invalidates exactly its entries)."""
    description = json.dumps({"stage": type(stage).__qualname__, "repr": repr(stage), "config": stage.config(),
                              "identity": stage.identity()}, sort_keys=True, default=str)
    return hashlib.sha256(description.encode()).hexdigest()[:32]


class Cached(Stage):
    """Wraps a stage; per query, reuses the stored output when stage, query text and input hits match."""

    def __init__(self, stage: Stage, directory: str | Path):
        self.stage, self.directory = stage, Path(directory)
        self.first_stage = stage.first_stage
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0  # per-query counts, for inspection

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.directory / "cache.sqlite")
        db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, ids TEXT, scores BLOB)")
        return db

    def _query_key(self, key: str, qid: str, text: str, run: Run | None) -> str:
        digest = hashlib.sha256(f"{key}\0{qid}\0{text}".encode())
        if run is not None and qid in run:
            digest.update(json.dumps(run.ids(qid)).encode())
            digest.update(run[qid].scores.tobytes())
        return digest.hexdigest()

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        key = stage_key(self.stage)  # now: the stage's indexes may have changed since the last call
        keys = {q: self._query_key(key, q, queries[q], run) for q in queries}
        with self._db() as db:
            stored = {}
            for key, ids, scores in db.execute(
                    f"SELECT key, ids, scores FROM results WHERE key IN ({','.join('?' * len(keys))})",
                    list(keys.values())):
                stored[key] = (json.loads(ids), np.frombuffer(scores, dtype=np.float32))
            missing = Queries(((q, queries[q]) for q in queries if keys[q] not in stored), name=queries.name)
            self.hits += len(queries) - len(missing)
            self.misses += len(missing)
            if len(missing):
                fresh = self.stage(missing, None if run is None else _subset(run, missing))
                for q in missing:
                    ids, scores = (fresh.ids(q), fresh[q].scores) if q in fresh else ([], np.zeros(0, np.float32))
                    stored[keys[q]] = (ids, scores)
                    db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                               (keys[q], json.dumps(ids), scores.astype(np.float32).tobytes()))
        table = IdList()
        results = {q: (np.array([table.number(d) for d in stored[keys[q]][0]], dtype=np.int32), stored[keys[q]][1])
                   for q in queries}
        return Run(results, table, name=getattr(self.stage, "name", type(self.stage).__name__), presorted=True)

    def at_depth(self, k: int) -> "Cached | None":
        inner = self.stage.at_depth(k)
        return None if inner is None else Cached(inner, self.directory)

    def config(self) -> dict[str, Any]:
        return {"stage": repr(self.stage), "directory": str(self.directory)}

    def __repr__(self) -> str:
        return repr(self.stage)


def _subset(run: Run, queries: Queries) -> Run:
    return Run({q: run[q] for q in queries if q in run}, run.doc_ids, name=run.name, presorted=True)


def cache_pipeline(stage: Stage, directory: str | Path) -> Stage:
    """Cache every stage of a pipeline separately, so a change late in it keeps the earlier outputs."""
    if isinstance(stage, Pipeline):
        return Pipeline([Cached(s, directory) for s in stage.stages])
    return Cached(stage, directory)
