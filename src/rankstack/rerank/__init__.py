"""Second stages: rerankers, and the document-text sources they read.

Model-based rerankers need the neural extra (`pip install 'rankstack[neural]'`: torch, transformers); they are
imported on first use, so that `CorpusTexts`, `IndexTexts` and the HTTP side of `Listwise` work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack._lazy import lazy_exports
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


__getattr__ = lazy_exports("rankstack.rerank", _EXPORTS)

__all__ = sorted(["CorpusTexts", "IndexTexts", "Texts", "texts_from", *_EXPORTS])
