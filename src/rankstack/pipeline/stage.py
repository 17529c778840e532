"""The one contract every retriever, reranker and fusion step implements, and its simple algebra.

A stage maps queries (and, for second stages, the candidate run of an earlier stage) to a run,
batched over all queries. Stages compose:

    bm25 % 100 >> reranker        # top 100 of BM25, then rerank them
    Pipeline([bm25, CutOff(100), reranker])   # the same, spelled out
    (bm25 | dense).rrf() % 100    # fusion of two first stages (rankstack.pipeline.fusion)
"""

from __future__ import annotations

import copy
import os
from typing import Any, Iterator, Sequence

from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.index.search import check_k


STAGE_TYPES: dict[str, type] = {}  # every Stage subclass by name, to rebuild pipelines from their repr


def check_one(query: Any, k: Any) -> int:
    """`Stage.search`'s checks: InputError unless `query` is a non-blank string; `k` as checked by check_k."""
    if not isinstance(query, str):
        raise InputError(f"a query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InputError("empty query")
    return check_k(k)


class Stage:
    """Base class of all stages. Subclasses implement `transform`.

    `config()` returns the constructor's arguments, so that `repr(stage)` is an expression that
    rebuilds the stage (rankstack.pipeline.config.parse).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        STAGE_TYPES[cls.__name__] = cls

    #: True for stages that produce candidates from queries alone (they ignore an input run).
    first_stage: bool = False

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        raise NotImplementedError

    def __call__(self, queries: Queries | dict[str, str], run: Run | None = None) -> Run:
        if not isinstance(queries, Queries):
            queries = Queries(queries)
        if run is None and not self.first_stage:
            raise InputError(f"{self!r} is a second stage: it needs a candidate run (e.g. first_stage >> {self!r})")
        return self.transform(queries, run)

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """Convenience for one query: its top `k` [(doc id, score), ...], best first. A first stage searches at
        depth `k` (more or fewer hits than its own `k`); a pipeline passes `k` down to what it can."""
        k = check_one(query, k)
        return (self.at_depth(k) or self)(Queries({"q": query})).cut(k).hits("q")

    def at_depth(self, k: int) -> "Stage | None":
        """This stage asked for its top `k` hits instead of its own depth, or None when that cannot be pushed into
        it (then its output is cut). First stages with a depth `k` return a copy searching at `k`: the same top
        hits for exact searches, as asked directly for approximate ones (HNSW, IVF, Seismic, PLAID)."""
        if not self.first_stage or not isinstance(getattr(self, "k", None), int):
            return None
        pushed = copy.copy(self)
        pushed.k = k
        return pushed

    def identity(self) -> list:
        """What determines this stage's output beyond its configuration (its repr): the content identity of every
        index it reads (the commit id, new at every add, delete, merge or rebuild), of every model (its revision or
        content hash) and of every text source, directly or through the stages it holds. Caches key on it."""
        found: list = []
        for value in vars(self).values():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, Stage):
                    found.append(v.identity())
                elif hasattr(v, "commit_id"):
                    found.append(v.commit_id)
                elif callable(getattr(v, "identity", None)):
                    found.append(v.identity())
                elif callable(getattr(v, "model_info", None)):
                    found.append(v.model_info().get("content_hash"))
                elif hasattr(getattr(v, "spec", None), "revision"):
                    found.append(v.spec.revision)
        return found

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description of the stage (used in reprs and to reproduce pipelines)."""
        return {}

    # --- algebra -------------------------------------------------------------------------------

    def cached(self, directory) -> "Stage":
        """This stage (each stage of a pipeline) with its outputs cached on disk (rankstack.pipeline.cache)."""
        from rankstack.pipeline.cache import cache_pipeline

        return cache_pipeline(self, directory)

    def __rshift__(self, other: "Stage") -> "Pipeline":
        if not isinstance(other, Stage):
            return NotImplemented
        return Pipeline([self, other])

    def __or__(self, other: "Stage") -> "Stage":
        from rankstack.pipeline.fusion import Fusion

        if not isinstance(other, Stage):
            return NotImplemented
        left = self.branches if isinstance(self, Fusion) and self.open_ended else [self]
        return Fusion([*left, other], open_ended=True)

    def __mod__(self, k: int) -> "Pipeline":
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return Pipeline([self, CutOff(k)])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class CutOff(Stage):
    """Keep the top `k` hits of each query. In a pipeline, the stage before it is asked for `k` hits when it can
    be (`Stage.at_depth`), as PyTerrier's RankCutoff fuses into the transformer before it."""

    def __init__(self, k: int):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError(f"cut-off must be a positive integer, got {k!r}")
        self.k = k

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        return run.cut(self.k)

    def at_depth(self, k: int) -> "CutOff":
        return CutOff(min(self.k, k))

    def config(self) -> dict[str, Any]:
        return {"k": self.k}


class FromRun(Stage):
    """A first stage that replays a stored run: a Run, or a TREC or JSONL run file (e.g. DL 2019's BM25 top 100).

    Queries the run lacks get no hits."""

    first_stage = True

    def __init__(self, run: Run | str | os.PathLike):
        self.source = None if isinstance(run, Run) else os.fspath(run)
        self.run = run if isinstance(run, Run) else Run.read(run)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        return Run({q: self.run[q] for q in queries if q in self.run}, self.run.doc_ids, name=self.run.name,
                   presorted=True)

    def config(self) -> dict[str, Any]:
        return {"run": self.source}


class Pipeline(Stage):
    """Stages applied in order, each receiving the previous one's run. A cut-off asks the stage before it for only
    that many hits (`bm25 % 10` searches at k=10, `bm25 % 100 >> reranker` at k=100)."""

    def __init__(self, stages: Sequence[Stage]):
        flat: list[Stage] = []
        for stage in stages:
            flat.extend(stage.stages if isinstance(stage, Pipeline) else [stage])
        if not flat:
            raise InputError("a pipeline needs at least one stage")
        self.stages = flat
        self.first_stage = flat[0].first_stage

    def plan(self) -> list[Stage]:
        """The stages as run: each stage followed by a smaller cut-off replaced by itself at that depth."""
        plan = list(self.stages)
        for i in range(len(plan) - 1):
            cut = plan[i + 1]
            if isinstance(cut, CutOff) and cut.k < getattr(plan[i], "k", cut.k + 1):
                plan[i] = plan[i].at_depth(cut.k) or plan[i]
        return plan

    def at_depth(self, k: int) -> "Pipeline | None":
        last = self.stages[-1].at_depth(k)
        return None if last is None else Pipeline([*self.stages[:-1], last])

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        for _, run in self.steps(queries, run):
            pass
        return run

    def steps(self, queries: Queries, run: Run | None = None) -> Iterator[tuple[Stage, Run]]:
        """Each stage as run (`plan`) with its output, in order; the last output is the pipeline's. Lets a caller
        time each stage, read its scores, or stop between stages."""
        for stage in self.plan():
            run = stage(queries, run)
            yield stage, run

    def config(self) -> dict[str, Any]:
        return {"stages": [{"stage": type(s).__name__, **s.config()} for s in self.stages]}

    def __repr__(self) -> str:
        parts = [repr(self.stages[0])]
        for stage in self.stages[1:]:
            parts.append(f"% {stage.k}" if isinstance(stage, CutOff) else f">> {stage!r}")
        return " ".join(parts)
