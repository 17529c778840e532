"""Rerankers on their own pool of Ray actors (GPU actors where there are GPUs).

    ce = RemoteReranker(CrossEncoder(model, texts=ShardTexts(bm25)), actors=2, gpus_per_actor=1)
    pipeline = bm25 % 100 >> ce

Each actor holds its own copy of the reranker, rebuilt from its repr on the actor (so the model loads there), and
reranks a share of each batch's queries. Document texts are read once on the driver, from the reranker's own
`texts` (a corpus, an index, or the shards' stored documents), and sent with the candidates: the actors need no
access to the corpus. The output is the reranker's own: the same documents per query, the head rescored.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import IdList, Run
from rankstack.distributed.cluster import ensure
from rankstack.distributed.shards import cpu_options
from rankstack.errors import InputError, RankstackError
from rankstack.pipeline.stage import Stage

RETRIES = 3


class DictTexts:
    """Texts sent along with the candidates (the Texts protocol)."""

    def __init__(self, texts: dict[str, str]):
        self._texts = texts
        self.source = None

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        return [self._texts[d] for d in doc_ids]


class RerankServer:
    """One actor of the pool: a reranker rebuilt from its repr (or received whole, when it has none)."""

    def __init__(self, spec: Any):
        if isinstance(spec, str):
            from rankstack.pipeline.config import parse
            spec = parse(spec)
        self.stage = spec

    def ready(self) -> bool:
        return True

    def rerank(self, queries: dict[str, str], candidates: dict[str, tuple[np.ndarray, np.ndarray]], ids: list[str],
               texts: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The reranker's run over candidates given as positions in `ids`; the same shape back."""
        if hasattr(self.stage, "texts"):
            self.stage.texts = DictTexts(texts)
        run = self.stage(Queries(queries), Run(candidates, IdList(ids), presorted=True))
        return {q: (run[q].docnos, run[q].scores) for q in run}


class RemoteReranker(Stage):
    """A second stage run on `actors` Ray actors (each with `cpus_per_actor` CPUs reserved, default none, and
    `gpus_per_actor` GPUs), see
    the module docstring. `texts`: where the driver reads document texts (default: the reranker's own). `ship`:
    "repr" rebuilds the reranker on each actor from its repr; "object" sends the object itself (pickled)."""

    def __init__(self, reranker: Stage, actors: int = 2, *, cpus_per_actor: float | None = None,
                 gpus_per_actor: float = 0,
                 texts: Any = None, ship: str = "repr"):
        if ship not in ("repr", "object"):
            raise InputError(f"ship must be 'repr' or 'object', got {ship!r}")
        if not isinstance(reranker, Stage) or reranker.first_stage:
            raise InputError(f"RemoteReranker takes a second stage (a reranker), got {reranker!r}")
        if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
            raise InputError(f"actors must be a positive integer, got {actors!r}")
        ray = ensure()
        self.reranker, self.actors, self.cpus_per_actor, self.gpus_per_actor = reranker, actors, cpus_per_actor, \
            gpus_per_actor
        self.texts = texts if texts is not None else getattr(reranker, "texts", None)
        self.depth = getattr(reranker, "depth", None)
        self.ship = ship
        spec = repr(reranker) if ship == "repr" else ray.put(reranker)
        resources = cpu_options(ray, actors, cpus_per_actor, "reranker actors")
        if gpus_per_actor:
            resources["num_gpus"] = gpus_per_actor
        remote = ray.remote(RerankServer).options(**resources, max_restarts=-1, max_task_retries=RETRIES)
        self.servers = [remote.remote(spec) for _ in range(actors)]
        try:
            ray.get([server.ready.remote() for server in self.servers])
        except ray.exceptions.RayActorError as e:
            raise RankstackError(f"the reranker could not be started on its actors ({e}); if its repr does not "
                                 "rebuild it, pass ship='object'") from None

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        ray = ensure()
        qids = [q for q in queries if q in run and len(run[q].docnos)]
        shares = [qids[i::len(self.servers)] for i in range(len(self.servers))]
        refs, maps = [], []
        for server, share in zip(self.servers, shares):
            if not share:
                continue
            docnos = np.unique(np.concatenate([run[q].docnos for q in share]))
            position = {int(d): i for i, d in enumerate(docnos.tolist())}
            ids = run.doc_ids.take(docnos)
            candidates = {q: (np.array([position[int(d)] for d in run[q].docnos.tolist()], np.int32), run[q].scores)
                          for q in share}
            head = np.unique(np.concatenate([run[q].docnos[:self.depth] for q in share]))
            head_ids = [ids[position[int(d)]] for d in head.tolist()]
            texts = {}
            if self.texts is not None:
                texts = dict(zip(head_ids, self.texts.texts(head_ids)))
            refs.append(server.rerank.remote({q: queries[q] for q in share}, candidates, ids, texts))
            maps.append(docnos)
        results = {q: (np.zeros(0, np.int32), np.zeros(0, np.float32)) for q in queries}
        try:
            answers = ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            raise cause if isinstance(cause, RankstackError) else e from None
        for docnos, answer in zip(maps, answers):
            for q, (positions, scores) in answer.items():
                results[q] = (docnos[positions].astype(np.int32), scores)
        return Run(results, run.doc_ids, name=type(self.reranker).__name__, presorted=True)

    def identity(self) -> list:
        return [self.reranker.identity()]

    def close(self) -> None:
        ray = ensure()
        for server in self.servers:
            ray.kill(server)
        self.servers = []

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"reranker": self.reranker, "actors": self.actors}
        if self.cpus_per_actor is not None:
            config["cpus_per_actor"] = self.cpus_per_actor
        if self.gpus_per_actor:
            config["gpus_per_actor"] = self.gpus_per_actor
        if self.ship != "repr":
            config["ship"] = self.ship
        return config


