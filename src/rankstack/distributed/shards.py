"""Shard servers: each shard of a sharded index opened by Ray actors (one per replica), and calls to them that
survive a lost actor.

The servers are laid out over the cluster's nodes in turn, replica after replica, so that the replicas of a shard
sit on different nodes where there are enough (a soft preference: Ray places them elsewhere when a node is full or
gone).

A call goes to one replica of each shard at once (round robin over the replicas). When an actor dies mid-call, Ray
restarts it (actors restart without limit) and the call is sent again, to the next replica when there is one, up to
`retries` times; an actor that cannot be reached (its node lost: Ray notices it within seconds to tens of seconds,
then starts the actor on another node) is tried for at least `unreachable_wait` seconds. A shard that still fails
(or does not answer within `timeout` seconds) is an error, or, with `allow_partial`, is left out and named in the
answer's `missing` list. Errors raised by the index itself (bad input) are raised as they are, never retried.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

from rankstack.distributed.cluster import ensure
from rankstack.distributed.layout import ShardedIndex
from rankstack.errors import RankstackError

RETRIES = 3
BACKOFF = 0.2  # seconds before the first resend; doubled at each, up to MAX_BACKOFF
MAX_BACKOFF = 5.0
UNREACHABLE_WAIT = 30.0  # seconds an unreachable actor is retried for: Ray's detection of a lost node (15 s by
# default: a health check every 3 s, 5 missed), then a restart elsewhere


class ShardServer:
    """One shard's index, opened read-only in a Ray actor: searches, statistics, ids and stored documents."""

    def __init__(self, kind: str, path: str, threads: int | None = None):
        self.kind = kind
        self.busy = 0  # searches in progress (the actor answers other calls meanwhile)
        if threads is not None:
            import numba
            numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        if kind == "dense":
            from rankstack.index.dense import DenseIndex
            self.index = DenseIndex(path)
            self.size = self.index.total  # rows: the shard's doc numbers
        else:
            from rankstack.index.inverted import InvertedIndex
            self.index = InvertedIndex(path)
            self.size = self.index.num_docs

    def info(self) -> dict[str, Any]:
        """What the caller combines across shards: size of the doc-number space, statistics, settings."""
        index = self.index
        if self.kind == "dense":
            return {"size": self.size, "live": index.num_live, "commit": index.commit_id, "pid": os.getpid(),
                    "settings": {"dim": index.dim, "metric": index.metric, "factory": index.factory,
                                 "encoder": index.encoder_info}}
        return {"size": self.size, "live": index.num_live, "sum_lengths": int(index.sum_lengths),
                "commit": index.commit_id, "pid": os.getpid(), "settings": index.settings}

    def status(self) -> dict[str, Any]:
        """This server's process id, Ray node id and the searches it is running (for operations and fault
        tests)."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "busy": self.busy}

    def frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """Document frequency of each term in this shard."""
        return self.index.document_frequencies(terms)

    def search(self, queries: Any, k: int, params: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's top k in this shard: (local doc numbers, scores), best first, ties by doc number."""
        self.busy += 1
        try:
            if self.kind == "dense":
                rows, scores = self.index.search_arrays(queries, k, params)
                return [(r[r >= 0].astype(np.int32), s[r >= 0]) for r, s in zip(rows, scores)]
            return [tuple(h) for h in self.index.search(queries, k, params)]
        finally:
            self.busy -= 1

    def read_file(self, name: str) -> bytes | None:
        """An index-level file of this shard (InvertedIndex.read_file), or None."""
        return None if self.kind == "dense" else self.index.read_file(name)

    def ids(self, docnos: np.ndarray) -> list[str]:
        return self.index.doc_ids.take(np.asarray(docnos, dtype=np.int64))

    def stored(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The stored documents (JSON) of those of `doc_ids` that live in this shard."""
        if self.kind == "dense":
            raise RankstackError("dense shards store no document texts: give the reranker a corpus file")
        docnos = [(d, self.index.docno(d)) for d in doc_ids]
        found = [(d, n) for d, n in docnos if n >= 0]
        return dict(zip([d for d, _ in found], self.index.stored(n for _, n in found)))


def cpu_options(ray: Any, actors: int, cpus: float | None, what: str) -> dict[str, float]:
    """Ray options for `actors` actors of `cpus` CPUs each: reserved, when given (checked against the cluster:
    actors that cannot all be placed would wait forever); else Ray's default for actors (one CPU free to place
    one, none held while it runs; only while no resource at all is named), so that more shard servers than cores
    share them."""
    if cpus is None:
        return {}
    total = float(ray.cluster_resources().get("CPU", 0))
    if cpus * actors > total:
        raise RankstackError(f"{actors} {what} of {cpus:g} CPUs each need {cpus * actors:g} CPUs; the Ray cluster has "
                             f"{total:g}: ask for fewer CPUs per actor, or add nodes")
    return {"num_cpus": cpus}


def placements(ray: Any, actors: int, gpus: bool) -> list[dict[str, Any]]:
    """Ray options placing `actors` actors on the live nodes (with GPUs, when they need them) in turn, softly; no
    preference on a one-node cluster."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes()
                   if n["Alive"] and n["Resources"].get("GPU" if gpus else "CPU", 0) > 0)
    if len(nodes) < 2:
        return [{}] * actors
    return [{"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[a % len(nodes)], soft=True)}
            for a in range(actors)]


class ShardPool:
    """The servers of a sharded index: `replicas` actors per shard, each with `cpus` CPUs reserved (default: none,
    see `cpu_options`) and `gpus` GPUs; `threads`: numba threads per actor (default: its CPUs, at least 1)."""

    def __init__(self, index: ShardedIndex, replicas: int = 1, *, cpus: float | None = None, gpus: float = 0,
                 threads: int | None = None, retries: int = RETRIES, timeout: float | None = None,
                 allow_partial: bool = False, unreachable_wait: float = UNREACHABLE_WAIT):
        self.ray = ensure()
        self.index, self.replicas, self.retries, self.timeout = index, replicas, retries, timeout
        self.unreachable_wait = unreachable_wait
        self.allow_partial = allow_partial
        resources = cpu_options(self.ray, len(index.shards) * replicas, cpus, "shard servers")
        if gpus:
            resources["num_gpus"] = gpus
        remote = self.ray.remote(ShardServer)
        threads = threads or max(1, int(cpus or 1))
        places = placements(self.ray, len(index.shards) * replicas, gpus > 0)
        self.actors = [[remote.options(**resources, **places[s * replicas + r], max_restarts=-1, max_task_retries=0,
                                       max_concurrency=4).remote(index.kind, str(shard.path), threads)
                        for r in range(replicas)] for s, shard in enumerate(index.shards)]
        self._turn = 0
        self.failures = 0  # calls that failed and were sent again (or left out)
        infos, missing = self.call("info")
        if missing:
            raise RankstackError(f"shards {missing} of {index.path} could not be opened")
        self.infos = [infos[s] for s in range(len(self.actors))]
        self.bases = np.zeros(len(self.actors) + 1, dtype=np.int64)
        np.cumsum([i["size"] for i in self.infos], out=self.bases[1:])

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, method: str, *args: Any, per_shard: Sequence[tuple] | None = None,
             shards: Sequence[int] | None = None) -> tuple[dict[int, Any], list[int]]:
        """`method(*args)` (or `method(*per_shard[s])`) on one replica of each shard (of `shards`, default all) at
        once; ({shard: result}, shards left out). See the module docstring for failures."""
        ray = self.ray
        shards = list(range(len(self.actors))) if shards is None else list(shards)
        self._turn += 1
        attempt = {s: 0 for s in shards}
        pending = {}
        for s in shards:
            pending[self._send(s, method, args if per_shard is None else per_shard[s], 0)] = s
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        results: dict[int, Any] = {}
        missing: list[int] = []
        unreachable_since: dict[int, float] = {}
        while pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
            if not ready:  # out of time: every shard still pending has failed
                for ref, s in list(pending.items()):
                    del pending[ref]
                    self._give_up(s, f"no answer within {self.timeout} s", missing)
                break
            ref = ready[0]
            s = pending.pop(ref)
            try:
                results[s] = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                raise cause if isinstance(cause, RankstackError) else e from None
            except ray.exceptions.RayActorError as e:
                self.failures += 1
                attempt[s] += 1
                if isinstance(e, ray.exceptions.ActorUnavailableError):
                    unreachable_since.setdefault(s, time.monotonic())
                patient = s in unreachable_since and \
                    time.monotonic() - unreachable_since[s] < self.unreachable_wait
                if attempt[s] > self.retries and not patient:
                    self._give_up(s, f"its actors died {attempt[s]} times ({type(e).__name__})", missing)
                    continue
                time.sleep(min(MAX_BACKOFF, BACKOFF * 2 ** (attempt[s] - 1)))
                pending[self._send(s, method, args if per_shard is None else per_shard[s], attempt[s])] = s
        return results, sorted(missing)

    def _send(self, shard: int, method: str, args: Sequence, attempt: int) -> Any:
        replicas = self.actors[shard]
        actor = replicas[(self._turn + shard + attempt) % len(replicas)]
        return getattr(actor, method).remote(*args)

    def _give_up(self, shard: int, why: str, missing: list[int]) -> None:
        if not self.allow_partial:
            raise RankstackError(f"shard {shard} of {self.index.path} failed: {why}; pass allow_partial=True to "
                                 "answer from the other shards")
        missing.append(shard)

    def status(self) -> list[list[dict[str, Any]]]:
        """Every actor's `ShardServer.status()`, by shard then replica."""
        return [self.ray.get([a.status.remote() for a in replicas]) for replicas in self.actors]

    def close(self) -> None:
        """Stop the actors."""
        for replicas in self.actors:
            for actor in replicas:
                self.ray.kill(actor)
        self.actors = []
