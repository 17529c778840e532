"""rankstack: multi-stage search — index, retrieve, fuse, rerank and evaluate in one pipeline.

Names are imported on first use, so that e.g. `rankstack.encoders` loads without the lexical stack's
dependencies and `import rankstack` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Corpus": "data", "Document": "data", "Qrels": "data", "Queries": "data", "Run": "data",
    "RankstackError": "errors", "InputError": "errors", "DatasetNotFoundError": "errors",
    "IndexFormatError": "errors", "IncompatibleIndexError": "errors",
    "IndexWriter": "index.inverted", "InvertedIndex": "index.inverted",
    "CutOff": "pipeline", "FromRun": "pipeline", "Fusion": "pipeline", "Pipeline": "pipeline", "Stage": "pipeline", "fuse": "pipeline",
    "BM25": "retrieve", "Analyzer": "text",
    "compare": "evaluate", "parse_measures": "evaluate", "Comparison": "evaluate",
    "Evaluation": "evaluate", "Experiment": "experiment",
}

if TYPE_CHECKING:
    from rankstack.data import Corpus, Document, Qrels, Queries, Run
    from rankstack.errors import (DatasetNotFoundError, IncompatibleIndexError, IndexFormatError, InputError,
                                  RankstackError)
    from rankstack.evaluate import Comparison, Evaluation, compare, parse_measures
    from rankstack.experiment import Experiment
    from rankstack.index.inverted import IndexWriter, InvertedIndex
    from rankstack.pipeline import CutOff, FromRun, Fusion, Pipeline, Stage, fuse
    from rankstack.retrieve import BM25
    from rankstack.text import Analyzer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rankstack' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rankstack.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(["__version__", *_EXPORTS])
