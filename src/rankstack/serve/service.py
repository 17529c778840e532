"""The one place requests meet pipelines, for the HTTP routes and the MCP tools alike.

Every request runs in a worker thread (the event loop only waits): searches hold the read side of a lock, document
writes the write side, so a write never swaps an index under a running search. Each request has a deadline
(limits.request_seconds): the answer is a 408 when it passes, and the work stops at the next pipeline step or
model batch. Pipelines run step by step (Pipeline.steps) to time each stage and read its scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Mapping, Sequence

import numba

from rankstack.data.corpus import Document
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.index.query import numba_threads
from rankstack.pipeline.stage import Pipeline, Stage
from rankstack.serve import batching, limits
from rankstack.serve.batching import walk
from rankstack.serve.collection import Collection, Served, step_labels
from rankstack.serve.config import ServeConfig
from rankstack.serve.errors import NotFound, NotReady, RequestTimeout
from rankstack.serve.highlight import Highlighter
from rankstack.serve.metrics import Metrics
from rankstack.serve.texts import candidate_texts

log = logging.getLogger(__name__)

QID = "q"               # the query id of a single-query request
SNIPPET_CHARS = 320     # characters of text around the first matched term in a hit
NDCG = "nDCG@10"


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before new readers."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self, timeout: float | None) -> Iterator[None]:
        with self._cond:
            if not self._cond.wait_for(lambda: not self._writer and not self._writers_waiting, timeout):
                raise limits.timeout_error()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self, timeout: float | None) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                if not self._cond.wait_for(lambda: not self._writer and not self._readers, timeout):
                    raise limits.timeout_error()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Service:
    """Builds the config's collection (`load`, once) and answers requests on it."""

    def __init__(self, config: ServeConfig, metrics: Metrics | None = None):
        self.config, self.settings, self.limits = config, config.settings, config.settings.limits
        self.metrics = metrics or Metrics()
        self.collection: Collection | None = None
        self.state, self.failure = "loading", None
        self.executor = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="rankstack-worker",
                                           initializer=_one_numba_thread)
        self.lock = ReadWriteLock()
        self.batchers: list[batching.MicroBatcher] = []
        self.highlighter: Highlighter | None = None
        self._serial: Any = contextlib.nullcontext()
        self._ray_started = False  # whether loading connected to Ray (closing disconnects then)
        self._built: Collection | None = None  # what loading built, ready or not (closing closes its stages)

    # --- life cycle -----------------------------------------------------------------------------------------

    def load(self) -> None:
        """Build the pipelines (and any missing BM25 index), install micro-batching, warm every first-stage
        pipeline up with one query. Sets `state` to "ready", or "failed" with the message in `failure`."""
        try:
            if self.settings.model_threads is not None:
                _torch_threads(self.settings.model_threads)
            ray_before = _ray_connected()
            try:
                if self.config.ray is not None:
                    from rankstack.distributed import cluster

                    ray = self.config.ray
                    cluster.init(ray.address, num_cpus=ray.num_cpus, num_gpus=ray.num_gpus,
                                 object_store_mb=ray.object_store_mb)
                collection = Collection(self.config)
            finally:  # a sharded stage connects on its own when the config names no cluster
                self._ray_started = not ray_before and _ray_connected()
            self._built = collection
            if self.settings.batching:
                self.batchers = batching.install(
                    [s.stage for s in collection.pipelines.values()] + list(collection.stages.values()),
                    self.settings.window_ms / 1000, self.settings.max_items, self.metrics.batch_observer)
            self.highlighter = Highlighter(collection.analyzer)
            for served in collection.pipelines.values():
                if served.first_stage:
                    served.stage(Queries({QID: "warm up"}))  # compiles kernels, loads lazily opened models
            self._serial = _kernel_lock()
            self.collection, self.state = collection, "ready"
            log.info("ready: %d pipelines (%s)", len(collection.pipelines), ", ".join(collection.pipelines))
        except Exception as e:  # noqa: BLE001 - reported by /ready and the log
            self.state, self.failure = "failed", str(e)
            raise

    def close(self) -> None:
        """Stop the batchers and worker threads, release what stages hold (their `close`: e.g. the Ray actors of
        sharded stages) and disconnect from Ray if loading connected (a local cluster it started stops)."""
        for b in self.batchers:
            b.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        collection, self._built = self._built, None
        if collection is not None:
            for stage in walk([s.stage for s in collection.pipelines.values()] + list(collection.stages.values())):
                if callable(getattr(stage, "close", None)):
                    try:
                        stage.close()
                    except Exception as e:  # noqa: BLE001 - shutting down: the others are still closed
                        log.warning("closing %s failed: %s", type(stage).__name__, e)
        if self._ray_started:
            from rankstack.distributed import cluster

            cluster.shutdown()
            self._ray_started = False

    def require_ready(self) -> Collection:
        if self.collection is None:
            raise NotReady("the server is still loading its pipelines" if self.state == "loading"
                           else "the server failed to load its pipelines (see its log)")
        return self.collection

    # --- running in worker threads --------------------------------------------------------------------------

    async def read(self, fn: Callable, *args: Any) -> Any:
        """`fn(*args)` in a worker thread under the read lock, within the request-time limit."""
        self.require_ready()
        seconds, start = self.limits.request_seconds, time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(
            self.executor, contextvars.copy_context().run, self._locked, self.lock.read, seconds, start, fn, args)
        try:
            return await asyncio.wait_for(future, seconds - (time.monotonic() - start))
        except asyncio.TimeoutError:
            self.metrics.timeouts.inc()
            raise RequestTimeout(seconds) from None

    async def write(self, fn: Callable, *args: Any) -> Any:
        """`fn(*args)` in a worker thread under the write lock (waited for within the request-time limit); once
        started, a write runs to its commit and is answered then."""
        self.require_ready()
        seconds, start = self.limits.request_seconds, time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, contextvars.copy_context().run, self._locked, self.lock.write, seconds, start, fn, args,
            False)

    @staticmethod
    def _locked(lock: Callable, seconds: float, start: float, fn: Callable, args: tuple, bounded: bool = True) -> Any:
        """fn(*args) holding `lock` (waited for until the deadline); `bounded`: the deadline holds for fn too."""
        limits.set_deadline(seconds, start)
        limits.check_deadline()
        with lock(limits.remaining()):
            if not bounded:
                limits.clear_deadline()
            return fn(*args)

    # --- pipelines ------------------------------------------------------------------------------------------

    def pipeline(self, name: str | None) -> Served:
        pipelines = self.require_ready().pipelines
        if name is None:
            return next(iter(pipelines.values()))
        if name not in pipelines:
            raise NotFound(f"unknown pipeline {name!r}; pipelines: {', '.join(pipelines)}")
        return pipelines[name]

    def _trace(self, served: Served, stage: Stage, queries: Queries, run: Run | None = None
               ) -> tuple[Run, list[tuple[str | None, Run]]]:
        """Run `stage` (the served pipeline, maybe with a cut-off added) step by step: the final run and each step's
        (label, run), with each step timed and the deadline checked between steps."""
        steps = stage.steps(queries, run) if isinstance(stage, Pipeline) else _one_step(stage, queries, run)
        trace, start = [], time.perf_counter()
        last = start
        for (_, out), label in zip(_serially(steps, self._serial), step_labels(stage)):
            now = time.perf_counter()
            if label is not None:
                self.metrics.stage_seconds.labels(served.name, label).observe(now - last)
            last = now
            trace.append((label, out))
            limits.check_deadline()
        self.metrics.pipeline_seconds.labels(served.name).observe(last - start)
        return trace[-1][1], trace

    def search(self, name: str | None, query: str, k: int, ids: Sequence[str] | None = None,
               qid: str | None = None, explain: bool = False, text: bool = False) -> dict:
        """One query: the top k hits (only those in `ids` when given), with each stage's scores (`explain`), the
        title and a snippet with the query's terms marked (`text`), and relevance and nDCG@10 when `qid` is a
        judged query of the served collection."""
        served = self.pipeline(name)
        if not served.first_stage:
            raise InputError(f"pipeline {served.name!r} is a second stage: it reranks candidates (use rerank)")
        self._check_query(query)
        self.limits.check("k", k, "k")
        stage = served.stage if ids is not None else _at_depth(served.stage, k)
        start = time.perf_counter()
        final, trace = self._trace(served, stage, Queries({QID: query}))
        hits = final.get(QID)
        doc_ids = final.doc_ids.take(hits.docnos) if hits is not None else []
        scores = hits.scores.tolist() if hits is not None else []
        if ids is not None:
            allowed = set(ids)
            kept = [(d, s) for d, s in zip(doc_ids, scores) if d in allowed][:k]
            doc_ids, scores = [d for d, _ in kept], [s for _, s in kept]
        else:
            doc_ids, scores = doc_ids[:k], scores[:k]
        out = [{"rank": r, "id": d, "score": s} for r, (d, s) in enumerate(zip(doc_ids, scores), start=1)]
        if explain:
            for hit, stage_scores in zip(out, _stage_scores(trace, doc_ids)):
                hit["stages"] = stage_scores
        if text:
            self._add_text(out, query)
        response = {"pipeline": served.name, "query": query, "k": k,
                    "stages": [label for label in step_labels(stage) if label is not None], "hits": out}
        response.update(self._judgments(qid, out))
        response["took_ms"] = round((time.perf_counter() - start) * 1000, 3)
        return response

    def search_batch(self, name: str | None, queries: Mapping[str, str], k: int) -> dict:
        served = self.pipeline(name)
        if not served.first_stage:
            raise InputError(f"pipeline {served.name!r} is a second stage: it reranks candidates (use rerank)")
        self.limits.check("batch", len(queries), "the number of queries")
        self.limits.check("k", k, "k")
        for text in queries.values():
            self._check_query(text)
        self.metrics.search_batch.observe(len(queries))
        # a batch uses every core (a single query, one: the other cores serve others)
        with numba_threads(numba.config.NUMBA_NUM_THREADS):
            final, _ = self._trace(served, _at_depth(served.stage, k), Queries(queries))
        return {"pipeline": served.name, "k": k,
                "results": [{"id": q, "hits": [{"id": d, "score": s} for d, s in final.hits(q)] if q in final else []}
                            for q in queries]}

    def rerank(self, name: str, query: str, candidates: Sequence[tuple[str, str | None]], k: int | None) -> dict:
        """Rerank candidates (id, text or None to read it from the collection), given best first, with a second-stage
        pipeline; all candidates come back (the top k when given)."""
        served = self.pipeline(name)
        if served.first_stage:
            raise InputError(f"pipeline {served.name!r} is a first stage; rerank needs a second stage (a reranker)")
        self._check_query(query)
        self.limits.check("candidates", len(candidates), "the number of candidates")
        if k is not None:
            self.limits.check("k", k, "k")
        seen = set()
        for doc_id, _ in candidates:
            if doc_id in seen:
                raise InputError(f"candidate {doc_id!r} is listed twice")
            seen.add(doc_id)
        n = len(candidates)
        run = Run.from_dict({QID: [(doc_id, float(n - i)) for i, (doc_id, _) in enumerate(candidates)]})
        texts = {doc_id: text for doc_id, text in candidates if text is not None}
        with candidate_texts(texts):
            final, _ = self._trace(served, served.stage, Queries({QID: query}), run)
        hits = final.hits(QID) if QID in final else []
        hits = hits[:k] if k is not None else hits
        return {"pipeline": served.name, "query": query,
                "hits": [{"rank": r, "id": d, "score": s} for r, (d, s) in enumerate(hits, start=1)]}

    def fuse_runs(self, runs: Sequence[Sequence[tuple[str, float]]], method: str, k: int, rrf_k: int,
                  weights: Sequence[float] | None, norm: str) -> dict:
        if len(runs) < 2:
            raise InputError("fusion needs at least two runs")
        self.limits.check("batch", len(runs), "the number of runs")
        for hits in runs:
            self.limits.check("candidates", len(hits), "the number of hits of a run")
        return self._fuse(runs, method, k, rrf_k, weights, norm)

    def _fuse(self, runs: Sequence[Sequence[tuple[str, float]]], method: str, k: int, rrf_k: int,
              weights: Sequence[float] | None, norm: str) -> dict:
        from rankstack.pipeline.fusion import fuse

        self.limits.check("k", k, "k")
        fused = fuse([Run.from_dict({QID: list(hits)}, name=f"run{i}") for i, hits in enumerate(runs)], method,
                     weights, rrf_k, norm)
        hits = fused.hits(QID)[:k] if QID in fused else []
        return {"method": method, "hits": [{"rank": r, "id": d, "score": s} for r, (d, s) in enumerate(hits, 1)]}

    def fuse_pipelines(self, names: Sequence[str], query: str, method: str, k: int, rrf_k: int,
                       weights: Sequence[float] | None, norm: str) -> dict:
        """Fuse the results of pipelines for one query, each searched at depth max(k, 100) (within the k limit)."""
        if len(names) < 2:
            raise InputError("fusion needs at least two pipelines")
        self.limits.check("batch", len(names), "the number of pipelines")
        depth = min(max(k, 100), self.limits.k)
        runs = [[(h["id"], h["score"]) for h in self.search(name, query, depth)["hits"]] for name in names]
        return {**self._fuse(runs, method, k, rrf_k, weights, norm), "pipelines": list(names), "query": query}

    # --- documents ------------------------------------------------------------------------------------------

    def document(self, doc_id: str, query: str | None = None) -> dict:
        doc = self.require_ready().document(doc_id)
        if doc is None:
            raise NotFound(f"no document with id {doc_id!r}")
        out = {"id": doc.id, "title": doc.title, "text": doc.text}
        if query:
            self._check_query(query)
            terms = self.highlighter.terms(query)
            out["segments"] = {"title": self.highlighter.segments(doc.title, terms),
                               "text": self.highlighter.segments(doc.text, terms)}
        return out

    def add(self, documents: Sequence[Document]) -> dict:
        self.limits.check("batch", len(documents), "the number of documents")
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InputError("a document id is listed twice")
        _check_documents(documents)
        self.require_ready().add(list(documents))
        self.metrics.writes.labels("add").inc(len(documents))
        return {"added": len(documents), "ids": ids}

    def replace(self, document: Document) -> dict:
        _check_documents([document])
        collection = self.require_ready()
        existed = collection.reader is not None and collection.document(document.id) is not None
        collection.add([document])
        self.metrics.writes.labels("replace" if existed else "add").inc()
        return {"id": document.id, "created": not existed}

    def delete(self, doc_id: str) -> dict:
        collection = self.require_ready()
        if collection.document(doc_id) is None:
            raise NotFound(f"no document with id {doc_id!r}")
        collection.delete([doc_id])
        self.metrics.writes.labels("delete").inc()
        return {"deleted": doc_id}

    # --- helpers --------------------------------------------------------------------------------------------

    def _check_query(self, query: str) -> None:
        self.limits.check_query(query)
        if not query.strip():
            raise InputError("the query is empty")

    def _add_text(self, hits: list[dict], query: str) -> None:
        collection, terms = self.collection, self.highlighter.terms(query)
        if collection.reader is None:
            return
        for hit in hits:
            doc = collection.document(hit["id"])
            if doc is not None:
                hit["title"] = self.highlighter.segments(doc.title, terms)
                hit["snippet"] = self.highlighter.segments(doc.text, terms, SNIPPET_CHARS)

    def _judgments(self, qid: str | None, hits: list[dict]) -> dict:
        qrels = self.collection.qrels
        if qid is None or qrels is None:
            return {}
        if qid not in qrels:
            return {"qid": qid, "judged": False}
        judged = qrels[qid]
        for hit in hits:
            hit["relevance"] = judged.get(hit["id"])
        return {"qid": qid, "judged": True, "ndcg@10": ndcg10(qid, hits, judged),
                "relevant": sum(1 for r in judged.values() if r > 0)}


def _at_depth(stage: Stage, k: int) -> Stage:
    """The stage asked for k hits (Stage.at_depth: a first stage searches at depth k), else followed by a cut-off."""
    return stage.at_depth(k) or stage % k


def _one_step(stage: Stage, queries: Queries, run: Run | None) -> Iterator[tuple[Stage, Run]]:
    yield stage, stage(queries, run)


def _serially(steps: Iterator, lock: Any) -> Iterator:
    """The steps, each computed holding `lock` (a no-op unless the kernels may not run concurrently)."""
    while True:
        with lock:
            step = next(steps, None)
        if step is None:
            return
        yield step


def _ray_connected() -> bool:
    """Whether this process is connected to Ray (without importing it)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _one_numba_thread() -> None:
    """Worker threads run numba kernels on one thread each (numba's setting is per thread): concurrent requests,
    not one request's kernel, share the cores."""
    numba.set_num_threads(1)


def _torch_threads(n: int) -> None:
    """torch's intra-op threads (process-wide), where torch is installed."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def _kernel_lock() -> Any:
    """A lock around pipeline steps if numba's threading layer is 'workqueue', which is not thread-safe (concurrent
    parallel kernels would abort the process); else a no-op. Install tbb, or have libgomp, to serve concurrently."""
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run: nothing to guard
        return contextlib.nullcontext()
    if layer != "workqueue":
        return contextlib.nullcontext()
    log.warning("numba's threading layer is 'workqueue', which is not thread-safe: pipeline steps run one at a "
                "time (pip install tbb, or install libgomp, to serve requests concurrently)")
    return threading.Lock()


def _check_documents(documents: Sequence[Document]) -> None:
    """Refuse what some stage would refuse after others had committed it: a document without a word."""
    for doc in documents:
        if not doc.contents.strip():
            raise InputError(f"document {doc.id!r} has no text (title and text are empty)")


def ndcg10(qid: str, hits: list[dict], judged: Mapping[str, int]) -> float:
    """nDCG@10 of the hits shown (trec_eval's, through rankstack.evaluate)."""
    from rankstack.data.qrels import Qrels
    from rankstack.evaluate import evaluate

    if not hits:
        return 0.0
    run = Run.from_dict({qid: [(h["id"], h["score"]) for h in hits]})
    return evaluate(run, Qrels({qid: judged}), [NDCG]).value(NDCG, qid)


def _stage_scores(trace: list[tuple[str | None, Run]], doc_ids: Sequence[str]) -> list[dict[str, float | None]]:
    """For each document, its score in each labelled step's run (None where that step did not return it)."""
    tables = []
    for label, run in trace:
        if label is None or QID not in run:
            continue
        hits = run[QID]
        tables.append((label, dict(zip(run.doc_ids.take(hits.docnos), hits.scores.tolist()))))
    return [{label: table.get(d) for label, table in tables} for d in doc_ids]
