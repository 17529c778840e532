"""Corpora, queries, qrels and runs, with their readers and writers."""

from rankstack.data.corpus import Corpus, Document
from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.data.run import Run

__all__ = ["Corpus", "Document", "Qrels", "Queries", "Run"]
