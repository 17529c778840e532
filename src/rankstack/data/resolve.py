"""A collection name or a file: the resolvers every front end (CLI, experiment configs, service) shares.

    corpus("beir/scifact")          # the named collection's corpus
    corpus("docs.jsonl")            # a corpus file
    queries("topics.tsv"), qrels("beir/scifact/train")
"""

from __future__ import annotations

from pathlib import Path

from rankstack.data import datasets
from rankstack.data.corpus import Corpus
from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries


def is_collection_name(value: str) -> bool:
    """True for a known collection name that is not also an existing path."""
    return value.strip("/") in datasets.COLLECTIONS and not Path(value).exists()


def corpus(value: str, format: str | None = None) -> Corpus:
    return datasets.load(value).corpus if is_collection_name(value) else Corpus(value, format)


def queries(value: str) -> Queries:
    return datasets.load(value).queries if is_collection_name(value) else Queries.read(value)


def qrels(value: str) -> Qrels:
    return datasets.load(value).qrels if is_collection_name(value) else Qrels.read(value)
