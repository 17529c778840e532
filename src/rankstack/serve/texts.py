"""Document texts for served rerankers: a request's own candidate texts first, else the configured source.

A rerank request may carry its candidates' texts; they are set for the worker thread that serves it (a context
variable), and the reranker's `texts` (replaced at start-up by a RequestTexts around the configured one) reads them
there. Texts configured from an index that receives document writes are read through the writing stage, so that
rerankers see added and replaced documents.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Mapping, Sequence

from rankstack.errors import InputError

_overlay: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("rankstack_texts", default=None)


@contextlib.contextmanager
def candidate_texts(texts: Mapping[str, str]) -> Iterator[None]:
    """Within the block, rerankers read these texts (by doc id) before their own source."""
    token = _overlay.set(texts)
    try:
        yield
    finally:
        _overlay.reset(token)


class RequestTexts:
    """A reranker's texts (rankstack.rerank.texts.Texts): the request's candidate texts, else `base` (None: none
    configured); with `reader` (a stage with a `document(id)` method, e.g. the BM25 stage document writes go to),
    texts are read through it instead of `base`, so that written documents are seen."""

    def __init__(self, base, reader=None):
        self.base, self.reader = base, reader
        self.source = getattr(base, "source", None)

    def texts(self, doc_ids: Sequence[str]) -> list[str]:
        overlay = _overlay.get() or {}
        missing = [d for d in doc_ids if d not in overlay]
        found: dict[str, str] = {}
        if missing:
            if self.reader is not None:
                found = dict(zip(missing, self._read(missing)))
            elif self.base is not None:
                found = dict(zip(missing, self.base.texts(missing)))
            else:
                raise InputError(f"{len(missing)} candidate(s) have no text (e.g. {missing[0]!r}): send the "
                                 "candidates' texts, or configure texts for this reranker")
        return [overlay[d] if d in overlay else found[d] for d in doc_ids]

    def _read(self, doc_ids: Sequence[str]) -> list[str]:
        out = []
        for doc_id in doc_ids:
            try:
                out.append(self.reader.document(doc_id).contents)
            except KeyError:
                raise InputError(f"document {doc_id!r} is not in the collection") from None
        return out

    def identity(self):
        """What the texts depend on (caches key on it): the reading stage's, else the base source's."""
        source = self.reader if self.reader is not None else self.base
        return source.identity() if callable(getattr(source, "identity", None)) else None

    def __repr__(self) -> str:
        return f"RequestTexts({self.base!r})"
