"""rankstack: multi-stage search — index, retrieve, fuse, rerank and evaluate in one pipeline."""

from rankstack.data import Corpus, Document, Qrels, Queries, Run
from rankstack.errors import (DatasetNotFoundError, IncompatibleIndexError, IndexFormatError, InputError,
                              RankstackError)
from rankstack.index.inverted import IndexWriter, InvertedIndex
from rankstack.pipeline import CutOff, Fusion, Pipeline, Stage, fuse
from rankstack.retrieve import BM25
from rankstack.text import Analyzer

__version__ = "0.1.0"


def __getattr__(name: str):
    # Evaluation pulls in ir-measures and SciPy: import it only when asked for.
    if name in ("compare", "parse_measures", "Comparison", "Evaluation"):
        from rankstack import evaluate
        return getattr(evaluate, name)
    if name == "Experiment":
        from rankstack.experiment import Experiment
        return Experiment
    raise AttributeError(f"module 'rankstack' has no attribute {name!r}")


__all__ = ["Analyzer", "BM25", "Corpus", "CutOff", "Fusion", "fuse", "DatasetNotFoundError", "Document", "IncompatibleIndexError",
           "IndexFormatError", "IndexWriter", "InputError", "InvertedIndex", "Pipeline", "Qrels", "Queries",
           "RankstackError", "Run", "Stage", "__version__"]
