"""Micro-batching: concurrent requests that reach the same model are answered by one batched model call.

Requests run in worker threads. When one reaches a model (an encoder's `encode_queries` / `encode_documents`, a
pair reranker's `predict`), its items (texts, pairs) join a queue; a thread per model takes what has gathered,
waiting at most `window` seconds after the oldest item for more, up to `max_items` items, makes one call and
hands each request its own slice. While the model computes, the next batch gathers, so under load batches fill
without waiting. A request's items beyond `max_items` go in several batches; a request whose deadline passed
before its batch started is dropped (limits.RequestTimeout); a failed batch is retried request by request, so that
one bad request fails alone.

`install(stages, ...)` finds the models of served stages (each object once, however many pipelines share it) and
routes their calls through a MicroBatcher, by setting the method on the model object itself.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from rankstack.pipeline.stage import Stage
from rankstack.serve import limits
from rankstack.serve.errors import RequestTimeout

log = logging.getLogger(__name__)

#: Encoder methods batched across requests (every rankstack encoder has both).
ENCODER_METHODS = ("encode_queries", "encode_documents")


class _Job:
    __slots__ = ("items", "deadline", "arrival", "parts", "next", "done", "error", "cancelled")

    def __init__(self, items: list, deadline: float | None):
        self.items, self.deadline, self.arrival = items, deadline, time.monotonic()
        self.parts: list[tuple[int, Any]] = []  # (start, result of items[start:...])
        self.next = 0                           # first item not yet taken into a batch
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.cancelled = False


class MicroBatcher:
    """Callable like `fn(items)`, from many threads at once: concurrent calls are merged into batched calls of `fn`.

    `fn` takes a list and returns one result row per item (a NumPy array, a SciPy sparse matrix or a list).
    `observe(items, requests)`, if given, is called for every batch (for metrics).
    """

    def __init__(self, fn: Callable[[list], Any], name: str, window: float = 0.002, max_items: int = 256,
                 observe: Callable[[int, int], None] | None = None):
        if window < 0 or max_items < 1:
            raise ValueError("window must be >= 0 and max_items >= 1")
        self.fn, self.name, self.window, self.max_items, self.observe = fn, name, window, max_items, observe
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, items: Sequence) -> Any:
        if isinstance(items, str):  # let the model raise its own error for a bare string
            return self.fn(items)
        items = list(items)
        if not items:
            return self.fn(items)
        job = _Job(items, limits.deadline())
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the batcher of {self.name} is closed")
            self._start()
            self._queue.append(job)
            self._cond.notify_all()
        wait = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
        if not job.done.wait(wait):
            with self._cond:
                job.cancelled = True
            if not job.done.is_set():
                raise limits.timeout_error()
        if isinstance(job.error, RequestTimeout):  # expired before its batch: this thread's deadline says how long
            raise limits.timeout_error()
        if job.error is not None:
            raise job.error
        return _concat([part for _, part in sorted(job.parts, key=lambda p: p[0])])

    def close(self) -> None:
        """Stop the batching thread (pending calls still finish)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"rankstack-batch-{self.name}", daemon=True)
            self._thread.start()

    # --- the batching thread -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                self._gather()
                batch = self._take()
            if batch:
                self._run(batch)

    def _gather(self) -> None:
        """Wait (lock held, released while waiting) until max_items are queued or the oldest item's window ends."""
        first = self._queue[0].arrival
        while not self._closed:
            queued = sum(len(j.items) - j.next for j in self._queue)
            left = first + self.window - time.monotonic()
            if queued >= self.max_items or left <= 0:
                return
            self._cond.wait(left)

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Up to max_items items from the queue, oldest first, as (job, start, stop); drops expired jobs."""
        batch, room, now = [], self.max_items, time.monotonic()
        while self._queue and room > 0:
            job = self._queue[0]
            if job.cancelled or (job.deadline is not None and now > job.deadline):
                self._finish(self._queue.popleft(), RequestTimeout(0) if not job.cancelled else None)
                continue
            stop = min(len(job.items), job.next + room)
            batch.append((job, job.next, stop))
            room -= stop - job.next
            job.next = stop
            if stop == len(job.items):
                self._queue.popleft()
        return batch

    @staticmethod
    def _finish(job: _Job, error: BaseException | None) -> None:
        job.error = error
        job.done.set()

    def _run(self, batch: list[tuple[_Job, int, int]]) -> None:
        items = [x for job, start, stop in batch for x in job.items[start:stop]]
        if self.observe is not None:
            self.observe(len(items), len({id(job) for job, _, _ in batch}))
        try:
            result = self.fn(items)
            offset = 0
            for job, start, stop in batch:
                job.parts.append((start, result[offset:offset + stop - start]))
                offset += stop - start
        except BaseException as e:  # noqa: BLE001 - handed to the requests
            if len(batch) == 1:
                job, start, stop = batch[0]
                self._fail(job, e)
            else:  # one request's bad input must not fail the others: retry each alone
                for job, start, stop in batch:
                    try:
                        job.parts.append((start, self.fn(job.items[start:stop])))
                    except BaseException as e1:  # noqa: BLE001
                        self._fail(job, e1)
        for job, start, stop in batch:
            if job.error is None and stop == len(job.items):  # batches run in order: its other parts are in
                self._finish(job, None)

    def _fail(self, job: _Job, error: BaseException) -> None:
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
        self._finish(job, error)


def _concat(parts: list) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    if hasattr(parts[0], "tocsr"):
        import scipy.sparse as sp

        return sp.vstack(parts, format="csr")
    return [x for part in parts for x in part]


# --- finding the models of served stages ---------------------------------------------------------------------


def walk(stages: Iterable[Stage]) -> Iterator[Stage]:
    """Every stage reachable from `stages` (pipelines' stages, fusion branches, stages held by other stages), once."""
    seen: set[int] = set()
    todo = list(stages)
    while todo:
        stage = todo.pop()
        if id(stage) in seen:
            continue
        seen.add(id(stage))
        yield stage
        for value in vars(stage).values():
            if isinstance(value, Stage):
                todo.append(value)
            elif isinstance(value, (list, tuple)):
                todo.extend(v for v in value if isinstance(v, Stage))


def models(stages: Iterable[Stage]) -> list[tuple[Any, str]]:
    """(object, method name) of each model call that served stages make: encoders' encode methods and pair
    rerankers' `predict`; each object once."""
    from rankstack.rerank.base import PairReranker

    found: dict[int, tuple[Any, list[str]]] = {}
    for stage in walk(stages):
        encoder = getattr(stage, "encoder", None)  # a property may load it: served stages load their models here
        if encoder is not None and all(callable(getattr(encoder, m, None)) for m in ENCODER_METHODS):
            found.setdefault(id(encoder), (encoder, list(ENCODER_METHODS)))
        if isinstance(stage, PairReranker):
            found.setdefault(id(stage), (stage, ["predict"]))
    return [(obj, method) for obj, methods in found.values() for method in methods]


def install(stages: Iterable[Stage], window: float, max_items: int,
            observe: Callable[[str], Callable[[int, int], None]] | None = None) -> list[MicroBatcher]:
    """Route the model calls of `stages` through MicroBatchers; returns them (named `Class.method`, numbered when
    several objects of a class are served)."""
    batchers, names = [], collections.Counter()
    for obj, method in models(stages):
        name = f"{type(obj).__name__}.{method}"
        names[name] += 1
        if names[name] > 1:
            name = f"{name}#{names[name]}"
        batcher = MicroBatcher(getattr(obj, method), name, window, max_items,
                               observe(name) if observe is not None else None)
        setattr(obj, method, batcher)
        batchers.append(batcher)
    return batchers
