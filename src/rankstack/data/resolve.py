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


#: How collection names begin: a value that begins so and is no file is looked up (and, if unknown, named in the error).
NAME_PREFIXES = ("beir/", "msmarco-passage/", datasets.IRDS_PREFIX)


def is_collection_name(value: str) -> bool:
    """True for a collection name (`rankstack datasets`; `irds:<id>`), or what looks like one, that is not also an
    existing path."""
    return (datasets.is_name(value) or value.startswith(NAME_PREFIXES)) and not Path(value).exists()


def corpus(value: str, format: str | None = None) -> Corpus:
    return datasets.load(value).corpus if is_collection_name(value) else Corpus(value, format)


def queries(value: str) -> Queries:
    return datasets.load(value).queries if is_collection_name(value) else Queries.read(value)


def qrels(value: str) -> Qrels:
    return datasets.load(value).qrels if is_collection_name(value) else Qrels.read(value)
