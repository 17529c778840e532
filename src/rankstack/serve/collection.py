"""What a server serves, built once at start-up from its config: named pipelines over the same stage objects the
config names, the stages document writes go to, where documents are read from, and optional judged queries."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from rankstack.data.corpus import Document
from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.errors import InputError
from rankstack.pipeline.stage import CutOff, Pipeline, Stage
from rankstack.serve.batching import walk
from rankstack.serve.config import ServeConfig
from rankstack.serve.texts import RequestTexts
from rankstack.text.analyzer import Analyzer

log = logging.getLogger(__name__)


@dataclass
class Served:
    """One named pipeline: its config expression, the stage built from it, and a label per step (for scores and
    metrics: the stage's class, numbered when a class repeats; cut-offs have none)."""

    name: str
    expression: str
    stage: Stage
    labels: list[str | None]

    @property
    def first_stage(self) -> bool:
        return self.stage.first_stage


class Collection:
    """The built config. `writers`: the stages document writes go to (each commits its index); `reader`: the stage
    documents are read from by id (one with a `document` method); `analyzer`: the one that marks query terms."""

    def __init__(self, config: ServeConfig):
        from rankstack.experiment import _working_directory, load_pipelines

        self.config = config
        stages, pipelines = load_pipelines(config.raw, config.root)
        self.stages = stages
        self.pipelines = {name: Served(name, config.expressions[name], stage, step_labels(stage))
                          for name, stage in pipelines.items()}
        self.writers = [stages[name] for name in config.documents]
        for name, stage in zip(config.documents, self.writers):
            if not (callable(getattr(stage, "add", None)) and callable(getattr(stage, "delete", None))):
                raise InputError(f"stage {name!r} ({type(stage).__name__}) cannot take document writes")
        every = [s.stage for s in self.pipelines.values()] + list(stages.values())
        check_no_second_copies(every, self.writers)
        self.reader = next((s for s in [*self.writers, *walk(every)] if callable(getattr(s, "document", None))), None)
        self.analyzer = next((s.analyzer for s in walk(every) if isinstance(getattr(s, "analyzer", None), Analyzer)),
                             None) or Analyzer()
        self._route_texts(every)
        self.queries: Queries | None = None
        self.qrels: Qrels | None = None
        with _working_directory(config.root):
            self._load_judgments()

    # --- documents -------------------------------------------------------------------------------------------

    def document(self, doc_id: str) -> Document | None:
        """The stored document with this id, or None."""
        if self.reader is None:
            raise InputError("no stage of this server stores documents (serve a BM25 index to read them by id)")
        try:
            return self.reader.document(doc_id)
        except KeyError:
            return None

    def add(self, documents: list[Document]) -> None:
        """Add or replace documents in every writing stage; each commits before this returns."""
        if not self.writers:
            raise InputError("this server takes no document writes (its config names no 'documents' stages)")
        for stage in self.writers:
            stage.add(documents)

    def delete(self, doc_ids: list[str]) -> None:
        if not self.writers:
            raise InputError("this server takes no document writes (its config names no 'documents' stages)")
        for stage in self.writers:
            if "missing" in inspect.signature(stage.delete).parameters:
                stage.delete(doc_ids, missing="ignore")
            else:
                stage.delete(doc_ids)

    def size(self) -> int | None:
        """The live documents of the stage documents are read from (its index's, or its own `num_live`)."""
        live = getattr(self.reader, "num_live", None)
        if isinstance(live, int):
            return live
        index = getattr(self.reader, "index", None)
        try:
            return len(index) if index is not None else None
        except TypeError:
            return None

    # --- start-up helpers ------------------------------------------------------------------------------------

    def _route_texts(self, stages: Iterable[Stage]) -> None:
        """Give every reranker that reads texts a RequestTexts: the request's texts, else its own source, read
        through the writing stage when that source is a written index."""
        written = {_index_path(w): w for w in self.writers if _index_path(w) is not None}
        for stage in walk(stages):
            if "texts" not in vars(stage) or isinstance(stage.texts, RequestTexts):
                continue
            base = stage.texts
            source = getattr(base, "source", None)
            reader = None
            if source is not None and Path(source).absolute() in written:
                reader = written[Path(source).absolute()]
                if not callable(getattr(reader, "document", None)):
                    raise InputError(f"{type(stage).__name__} reads texts from an index that takes writes, but its "
                                     f"writing stage ({type(reader).__name__}) cannot read documents by id")
            stage.texts = RequestTexts(base, reader)

    def _load_judgments(self) -> None:
        from rankstack.data import resolve
        from rankstack.experiment import _resolve

        raw, root = self.config.raw, self.config.root
        if "qrels" in raw:
            self.qrels = _resolve(raw["qrels"], root, resolve.qrels)
        if "queries" in raw:
            queries = _resolve(raw["queries"], root, resolve.queries)
            self.queries = queries.subset(self.qrels) if self.qrels is not None else queries


def step_labels(stage: Stage) -> list[str | None]:
    """A label per step of a pipeline (one step for a single stage): its class, numbered when a class repeats;
    None for cut-offs, which add no score."""
    steps = stage.stages if isinstance(stage, Pipeline) else [stage]
    labels, seen = [], {}
    for step in steps:
        if isinstance(step, CutOff):
            labels.append(None)
            continue
        name = type(step).__name__
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def check_no_second_copies(stages: Iterable[Stage], writers: Sequence[Stage]) -> None:
    """InputError if a served stage opens a written index on its own: it would not see the writes (name the
    writing stage in 'stages' and use that name in the pipelines instead)."""
    written = {_index_path(w): w for w in writers if _index_path(w) is not None}
    for stage in walk(stages):
        path = _index_path(stage)
        if path in written and written[path] is not stage:
            raise InputError(f"a {type(stage).__name__} stage opens the index {path.name!r} on its own, so it would "
                             "not see document writes: name the stage once in 'stages' and use that name")


def _index_path(stage: Any) -> Path | None:
    path = getattr(getattr(stage, "index", None), "path", None)
    return Path(path).absolute() if path is not None else None
