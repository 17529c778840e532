"""Second stages that read document text: the cross-encoder reranker and the document-text sources it reads.

`CrossEncoder` needs the neural extra (`pip install 'rankstack[neural]'`: torch, transformers); it is imported on
first use, so that `CorpusTexts` and `IndexTexts` work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankstack.rerank.texts import CorpusTexts, IndexTexts, Texts, texts_from

if TYPE_CHECKING:
    from rankstack.rerank.cross_encoder import CrossEncoder


def __getattr__(name: str) -> Any:
    if name == "CrossEncoder":
        try:
            from rankstack.rerank.cross_encoder import CrossEncoder
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in ("torch", "transformers"):
                raise ImportError(f"rankstack.rerank.CrossEncoder needs {e.name}: "
                                  "pip install 'rankstack[neural]'") from e
            raise
        return CrossEncoder
    raise AttributeError(f"module 'rankstack.rerank' has no attribute {name!r}")


__all__ = ["CorpusTexts", "CrossEncoder", "IndexTexts", "Texts", "texts_from"]
