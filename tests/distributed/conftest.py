"""The session's local Ray cluster (tests/conftest.py: head and worker processes on this machine, 2 CPUs, no
dashboard, a small object store), slices of the shared pypi-summaries data, and tiny random-weight encoders.

The tests check mechanics (sharded results identical to one node, faults survived), which hold for any weights:
the encoders are one-layer BERTs (hidden 32, random weights) over a word-level vocabulary of the slice's commonest
words, a SPLADE-style masked LM and a dense encoder; the real SPLADE-tiny and MiniLM run in bench/bench_ray.py.
Sizes (CI keeps them small; the benchmark runs the full corpus): RANKSTACK_RAY_TEST_DOCS documents for BM25
(default 10,000), RANKSTACK_RAY_TEST_NEURAL_DOCS for the encoders (default 200), with 1,000 queries for BM25 and
RANKSTACK_RAY_TEST_NEURAL_QUERIES (default 100) for the encoders.
"""

import gzip
import itertools
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from ..conftest import SHARED_DATA

ray = pytest.importorskip("ray")

PYPI = SHARED_DATA / "pypi-summaries"
SCIFACT = Path(__file__).resolve().parents[2] / "src/rankstack/data/embedded/scifact/corpus.jsonl.gz"
BM25_DOCS = int(os.environ.get("RANKSTACK_RAY_TEST_DOCS", 10_000))
NEURAL_DOCS = int(os.environ.get("RANKSTACK_RAY_TEST_NEURAL_DOCS", 200))
NEURAL_QUERIES = int(os.environ.get("RANKSTACK_RAY_TEST_NEURAL_QUERIES", 100))


@pytest.fixture(scope="package")
def cluster(ray_cluster):
    """The session's local Ray cluster (tests/conftest.py)."""
    return ray_cluster


def write_slice(out: Path, n: int) -> Path:
    """The first `n` documents of pypi-summaries as a corpus file."""
    with gzip.open(PYPI / "corpus.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(out, "wt", encoding="utf-8", compresslevel=1) as dst:
        dst.writelines(itertools.islice(src, n))
    return out


def read_queries(n: int):
    from rankstack import Queries

    with open(PYPI / "queries.msmarco-dev-small.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    return Queries({r["_id"]: r["text"] for r in rows})


@pytest.fixture(scope="package")
def pypi(tmp_path_factory):
    if not PYPI.is_dir():
        pytest.skip(f"shared data not found at {PYPI}")
    folder = tmp_path_factory.mktemp("pypi")
    return {"bm25": write_slice(folder / "bm25.jsonl.gz", BM25_DOCS),
            "neural": write_slice(folder / "neural.jsonl.gz", NEURAL_DOCS),
            "queries": read_queries(1000), "neural_queries": read_queries(NEURAL_QUERIES)}


def same_runs(a, b):
    """Two runs with the same queries, the same documents in the same order and the same scores, bit for bit."""
    assert list(a) == list(b)
    for q in a:
        assert a.ids(q) == b.ids(q), q
        assert a[q].scores.tobytes() == b[q].scores.tobytes(), q
    return sum(len(a[q].docnos) for q in a)


def common_words(corpus: Path, n: int) -> list[str]:
    """The `n` commonest lower-case words of a corpus file (texts and titles)."""
    counts: Counter = Counter()
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for row in map(json.loads, f):
            counts.update(re.findall(r"[a-z]+", f"{row.get('title', '')} {row.get('text', '')}".lower()))
    return [w for w, _ in counts.most_common(n)]


def tiny_bert(out: Path, words: list[str], masked_lm: bool) -> Path:
    """A one-layer BERT (hidden 32, random weights, seed 0) over a word-level vocabulary of `words`: a masked LM
    (SPLADE-style) or a plain encoder (dense, mean pooled)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    out.mkdir(parents=True)
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(str(out / "vocab.txt"), model_max_length=64).save_pretrained(out)
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    (BertForMaskedLM if masked_lm else BertModel)(config).save_pretrained(out)
    return out


@pytest.fixture(scope="package")
def encoders(pypi, tmp_path_factory):
    """{"sparse": a SpladeEncoder, "dense": a DenseEncoder}, tiny and random (see the module docstring)."""
    pytest.importorskip("transformers")
    from rankstack.encoders import DenseEncoder, SpladeEncoder

    folder = tmp_path_factory.mktemp("tiny-models")
    words = common_words(pypi["neural"], 300)
    return {"sparse": SpladeEncoder(str(tiny_bert(folder / "splade", words, True)), progress=False),
            "dense": DenseEncoder(str(tiny_bert(folder / "dense", words, False)), progress=False)}
