"""BM25 builds with analysis and inversion in worker processes.

The corpus is cut into parts of consecutive documents; each worker process analyses a part and writes it as one
segment file (`write_part`); the index's one writer adopts the parts in corpus order (`IndexWriter.adopt`) and
commits once, so the index holds the documents in the same order (the same doc numbers) as a one-process build,
in more segments, which the writer's merge policy then merges. A worker that dies has its part, still held by the
driver, redone in a new pool; nothing is committed until every part is adopted, and a killed build leaves files
that no manifest lists, which the next writer removes. `rankstack.distributed` runs `write_part` on a Ray cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterable

from rankstack.progress import progress_bar

from rankstack.data.corpus import Corpus, Document
from rankstack.errors import InputError, RankstackError
from rankstack.gc_pause import gc_paused
from rankstack.index.commit import LOCK, new_name
from rankstack.index.inverted import IndexWriter, check_doc_ids, check_unique
from rankstack.index.segment import Segment, SegmentBuilder
from rankstack.retrieve.bm25 import INDEX_BATCH, Columns, analyze_documents, batches, located
from rankstack.text.analyzer import Analyzer

PART_DOCS = 100_000  # documents per part (one segment each)
RESTARTS = 3  # times a pool whose worker died is started again before the build gives up

_analyzers: dict[str, Analyzer] = {}  # per process: an analyzer keeps a cache of its normalised tokens


def write_part(docs: Columns, path: str | os.PathLike, analyzer_config: dict[str, Any], store: bool,
               length_norm: str, reorder: bool = False) -> int:
    """Analyse documents and write them, in order, as one BM25 segment file at `path` (new); return how many. Ids
    are checked as a writer checks them (non-empty, unique within the part)."""
    key = repr(sorted(analyzer_config.items()))
    analyzer = _analyzers.get(key) or _analyzers.setdefault(key, Analyzer.from_config(analyzer_config))
    builder = SegmentBuilder("bm25", store, length_norm, reorder)
    with gc_paused():
        for batch in docs.slices(INDEX_BATCH):
            analyzed = analyze_documents(batch, analyzer, store)
            check_doc_ids(analyzed["doc_ids"], analyzed["locations"])
            builder.add_batch(**analyzed)
        check_unique(builder, set(), [])
        builder.write(Path(path))
    return len(builder)


def index_in_parallel(writer: IndexWriter, corpus: Corpus | Iterable[Document], analyzer: Analyzer, workers: int,
                      progress: bool | None = None, part_docs: int = PART_DOCS) -> int:
    """Add a corpus's documents to `writer` (BM25 mode) with `workers` processes analysing and inverting parts of
    `part_docs` documents; return how many. The caller commits."""
    if writer.settings["mode"] != "bm25":
        raise InputError("parallel builds take BM25 indexes")
    if part_docs < 1:
        raise InputError(f"part_docs must be at least 1, got {part_docs}")
    staging = writer.path / new_name("parts")  # a generated name: removed by the next commit or writer if left
    staging.mkdir()
    args = (analyzer.config(), bool(writer.settings["store"]), writer.settings["length_norm"],
            writer.settings.get("reorder", False))
    pool = _Pool(workers, writer.path / LOCK)
    in_flight: deque[tuple[Columns, str, Future | None]] = deque()
    count = 0

    def submit(part: Columns) -> None:
        path = str(staging / new_name("part", ".rsx"))  # a new name per attempt: a dead worker's file is left alone
        try:
            future = pool.submit(write_part, part, path, *args)
        except BrokenProcessPool:
            future = None
        in_flight.append((part, path, future))
        if future is None:
            recover()

    def recover() -> None:
        """A worker died: a new pool does every part not adopted yet again."""
        while True:
            pool.restart()
            parts = [p for p, _, _ in in_flight]
            in_flight.clear()
            try:
                for p in parts:
                    path = str(staging / new_name("part", ".rsx"))
                    in_flight.append((p, path, pool.submit(write_part, p, path, *args)))
                return
            except BrokenProcessPool:
                in_flight.extend((p, "", None) for p in parts[len(in_flight):])

    def adopt_first() -> int:
        part, path, future = in_flight[0]
        try:
            future.result()
        except BrokenProcessPool:
            recover()
            return 0
        in_flight.popleft()
        try:
            return writer.adopt(path)
        except InputError as e:  # an id that an earlier part holds too
            raise InputError(f"{e}: an id given twice (documents {count + 1} to {count + len(part)} of the corpus"
                             + (f", from {part.locations[0]})" if part.locations[0] else ")")) from None

    try:
        _warm_up(staging, args)  # before the pool's first submit, which forks its workers
        with progress_bar(progress, desc="indexing", unit=" docs") as bar, gc_paused():
            for part in batches(located(corpus), part_docs):
                submit(Columns.of(part))
                while len(in_flight) > workers:  # at most one part waiting per worker: bounded memory
                    done = adopt_first()
                    count += done
                    bar.update(done)
            while in_flight:
                done = adopt_first()
                count += done
                bar.update(done)
    finally:
        pool.shutdown()
        shutil.rmtree(staging, ignore_errors=True)
    return count


def _warm_up(staging: Path, args: tuple) -> None:
    """Write, check and drop a one-document part here, so that this process loads the compiled kernels (numba's
    start and every kernel of `write_part` and `adopt`) once, before the pool forks its workers:
    forked workers inherit them instead of each loading them again."""
    path = staging / new_name("warm", ".rsx")
    write_part(Columns([""], ["warm-up"], [""], ["a warm-up text"]), path, *args)
    segment = Segment(path)
    segment.verify()
    segment.ids.hashes()
    path.unlink()


def _drop_lock(lock: str) -> None:
    """In a forked worker: close its copies of the writer's lock file, so that the lock lives and dies with the
    writer's process (a killed build frees its index at once, whatever its workers are still doing)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == lock:
                os.close(int(fd.name))
        except (OSError, ValueError):
            pass


class _Pool:
    """A process pool that can be started again after one of its workers died (at most RESTARTS times); its
    workers do not hold the writer's `lock` file."""

    def __init__(self, workers: int, lock: Path):
        self.workers, self.restarts = workers, 0
        # fork where there is one: no re-import of the caller's main module (scripts need no __main__ guard)
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._options = {"mp_context": self._context, "initializer": _drop_lock,
                         "initargs": (os.path.realpath(lock),)}
        self._executor = ProcessPoolExecutor(workers, **self._options)

    def submit(self, fn, *args) -> Future:
        return self._executor.submit(fn, *args)

    def restart(self) -> None:
        self.restarts += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.restarts > RESTARTS:
            raise RankstackError(f"indexing worker processes died {self.restarts} times (out of memory? killed?); "
                                 "nothing was committed")
        self._executor = ProcessPoolExecutor(self.workers, **self._options)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
