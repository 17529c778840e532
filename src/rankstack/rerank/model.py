"""What rerankers that run a local model on (query, document) pairs share: loading, batching, cached scoring,
CPU threads, config.

A subclass (CrossEncoder, QueryLikelihood, Pointwise) calls `_setup` (texts, depth, threads, the model, batching),
sets `cache` (a ScoreCache or None) and `_args` (its constructor's arguments), and implements
`_score_batches(pairs)`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from rankstack.encoders.batching import default_batching
from rankstack.encoders.loading import LoadedModel, load_model
from rankstack.errors import InputError
from rankstack.rerank.base import PairReranker, check_depth
from rankstack.rerank.cache import ScoreCache
from rankstack.rerank.texts import texts_config, texts_from


class ModelPairReranker(PairReranker):
    """A PairReranker whose scores come from a local model, with a score cache keyed by (model, query, document)."""

    cache: ScoreCache | None = None
    threads: int | None = None
    device: torch.device
    _args: dict[str, Any]

    def _setup(self, model: Any, task: str, texts: Any, depth: int | None, threads: int | None,
               batch_size: int | None, token_budget: int | None, progress: bool | None, **load: Any) -> LoadedModel:
        """Check and keep the texts source, depth, threads and progress; load the model for `task` (load_model,
        with `load`: device, dtype, max_length, revision); choose the batching (default_batching)."""
        check_depth(depth)
        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        self.texts = None if texts is None else texts_from(texts)
        self.depth, self.threads, self.progress = depth, threads, progress
        self.loaded = load_model(model, task=task, **load)
        self.device = self.loaded.device
        self.batch_size, self.token_budget = default_batching(self.device, batch_size, token_budget)
        return self.loaded

    def _keep_args(self, **given: Any) -> None:
        """Remember the constructor's arguments (model and cache paths as strings, texts as `texts_config`)."""
        cache = given.get("cache")
        self._args = {"model": os.fspath(given.pop("model")), "texts": texts_config(self.texts), **given,
                      "cache": os.fspath(cache) if isinstance(cache, (str, os.PathLike)) else cache}

    def _score_batches(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Scores of distinct, uncached pairs, batch by batch: (positions in `pairs`, float32 scores)."""
        raise NotImplementedError

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Scores of (query, document text) pairs, float32 in the order given. Repeated pairs are scored once;
        cached pairs not at all."""
        pairs = check_pairs(pairs)
        scores = np.empty(len(pairs), dtype=np.float32)
        cache = self.cache
        keys: list[Any] = pairs if cache is None else [cache.key(q, d) for q, d in pairs]
        known = {} if cache is None else cache.get_many(keys)
        todo: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            if key in known:
                scores[i] = known[key]
            else:
                todo.setdefault(key, []).append(i)
        if not todo:
            return scores
        todo_keys, todo_rows = list(todo), list(todo.values())
        for positions, new in self._score_batches([pairs[rows[0]] for rows in todo_rows]):
            positions, new = positions.tolist(), new.tolist()
            for p, s in zip(positions, new):
                scores[todo_rows[p]] = s
            if cache is not None:  # batch by batch: a reranking stopped part-way keeps what it scored
                cache.put_many([(todo_keys[p], s) for p, s in zip(positions, new)])
        return scores

    @contextlib.contextmanager
    def _thread_count(self) -> Iterator[None]:
        """Run with `threads` torch threads on CPU (the process setting is restored afterwards)."""
        if self.threads is None or self.device.type != "cpu":
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def clear_cache(self) -> None:
        """Forget the scores cached in memory."""
        if self.cache is not None:
            self.cache.clear()

    def config(self) -> dict[str, Any]:
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        return {k: v for k, v in self._args.items() if k in ("model", "texts") or v != defaults[k]}


def check_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(pairs, str) or (len(pairs) == 2 and all(isinstance(x, str) for x in pairs)):
        raise InputError("expected a list of (query, document) pairs, got a single pair; wrap it: [pair]")
    out = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], str):
            raise InputError(f"pair {i} is not a (query, document text) pair of strings: {pair!r:.80}")
        out.append((pair[0], pair[1]))
    return out
