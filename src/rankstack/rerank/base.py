"""What every reranker shares: rescore each query's top `depth` candidates, keep the rest below in order.

A reranker subclasses `Reranker` and implements `score(queries, heads, doc_ids)`, or subclasses
`PairReranker` and implements `predict(pairs)` on (query text, document text) pairs. No candidate is ever
dropped or duplicated: the output holds exactly the input's documents for each query.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import DocIds, Hits, Run, sort_hits
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.rerank.texts import Texts

_EMPTY = Hits(np.empty(0, np.int32), np.empty(0, np.float32))


def check_depth(depth: int | None) -> int | None:
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise InputError(f"depth must be a positive integer or None (every candidate), got {depth!r}")
    return depth


class Reranker(Stage):
    """A second stage that rescores the top `depth` candidates of each query (None: all of them).

    The rescored head comes first, best first (ties by doc number); the other candidates follow in their former
    order, with scores decreasing by 1 from below the lowest new score. Queries without candidates get no hits.
    """

    first_stage = False
    depth: int | None = None

    def score(self, queries: Queries, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> dict[str, np.ndarray]:
        """New scores (float32, one per doc number in the same order) for each query's head of candidates."""
        raise NotImplementedError

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        hits = {q: run.get(q, _EMPTY) for q in queries}
        heads = {q: h.docnos[:self.depth] for q, h in hits.items()}
        scores = self.score(queries, heads, run.doc_ids)
        results = {}
        for q, head in heads.items():
            top = sort_hits(head, np.asarray(scores[q], dtype=np.float32))
            rest = hits[q].docnos[len(head):]
            floor = top.scores[-1] if len(top.scores) else np.float32(0)
            rest_scores = floor - np.arange(1, len(rest) + 1, dtype=np.float32)
            results[q] = (np.concatenate([top.docnos, rest]), np.concatenate([top.scores, rest_scores]))
        return Run(results, run.doc_ids, name=type(self).__name__, presorted=True)


class PairReranker(Reranker):
    """A reranker that scores (query text, document text) pairs; `texts` supplies the documents' texts."""

    texts: Texts | None = None

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """float32 scores of (query, document text) pairs, in the order given."""
        raise NotImplementedError

    def score(self, queries: Queries, heads: Mapping[str, np.ndarray], doc_ids: DocIds) -> dict[str, np.ndarray]:
        if self.texts is None:
            raise InputError(f"{type(self).__name__} needs document texts to rerank: pass texts=CorpusTexts(corpus), "
                             "IndexTexts(bm25) or a path")
        texts, inverse = head_texts(heads, doc_ids, self.texts)
        pairs, start = [], 0
        for q, head in heads.items():
            query = queries[q]
            pairs.extend((query, texts[j]) for j in inverse[start:start + len(head)].tolist())
            start += len(head)
        return split(heads, self.predict(pairs))


def head_texts(heads: Mapping[str, np.ndarray], doc_ids: DocIds, texts: Texts) -> tuple[list[str], np.ndarray]:
    """The texts of the heads' distinct documents (each read once) and, for every head entry in order, its
    index into them."""
    unique, inverse = np.unique(np.concatenate([_EMPTY.docnos, *heads.values()]), return_inverse=True)
    return texts.texts(doc_ids.take(unique)), inverse


def split(heads: Mapping[str, np.ndarray], flat: np.ndarray) -> dict[str, np.ndarray]:
    """Cut scores listed head after head back into one array per query."""
    out, start = {}, 0
    for q, head in heads.items():
        out[q] = flat[start:start + len(head)]
        start += len(head)
    return out
