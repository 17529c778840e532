"""Second stages: rerankers, and the document-text sources they read.

Model-based rerankers need the neural extra (`pip install 'rankstack[neural]'`: torch, transformers); they are
imported on first use, so that `CorpusTexts`, `IndexTexts` and the HTTP side of `Listwise` work without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rankstack.rerank.texts import CorpusTexts, IndexTexts, Texts, texts_from

_EXPORTS = {"CrossEncoder": "cross_encoder", "BiEncoder": "bi_encoder", "MaxSim": "maxsim",
            "QueryLikelihood": "query_likelihood", "Pointwise": "pointwise", "Listwise": "listwise",
            "OpenAIClient": "openai_client", "Reranker": "base", "PairReranker": "base"}

if TYPE_CHECKING:
    from rankstack.rerank.base import PairReranker, Reranker
    from rankstack.rerank.bi_encoder import BiEncoder
    from rankstack.rerank.cross_encoder import CrossEncoder
    from rankstack.rerank.listwise import Listwise
    from rankstack.rerank.maxsim import MaxSim
    from rankstack.rerank.openai_client import OpenAIClient
    from rankstack.rerank.pointwise import Pointwise
    from rankstack.rerank.query_likelihood import QueryLikelihood


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rankstack.rerank' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"rankstack.rerank.{_EXPORTS[name]}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"rankstack.rerank.{name} needs {e.name}: pip install 'rankstack[neural]'") from e
        raise
    return getattr(module, name)


__all__ = sorted(["CorpusTexts", "IndexTexts", "Texts", "texts_from", *_EXPORTS])
