"""A local Ray cluster for the distributed tests (head and worker processes on this machine: 2 CPUs, no dashboard,
a small object store), started once for the package, and slices of the shared pypi-summaries data.

Sizes (CI keeps them small; the benchmark bench/bench_ray.py runs the full corpus): RANKSTACK_RAY_TEST_DOCS
documents for BM25 (default 10,000), RANKSTACK_RAY_TEST_NEURAL_DOCS for SPLADE-tiny and MiniLM (default 200),
with 1,000 queries for BM25 and RANKSTACK_RAY_TEST_NEURAL_QUERIES (default 100) for the encoders.
"""

import gzip
import itertools
import json
import os
from pathlib import Path

import pytest

from ..conftest import SHARED_DATA

ray = pytest.importorskip("ray")

PYPI = SHARED_DATA / "pypi-summaries"
MODELS = Path(os.environ.get("RANKSTACK_SHARED_MODELS", SHARED_DATA.parent / "models"))
SPLADE = MODELS / "splade-tiny-msmarco"
MINILM = MODELS / "sentence-transformers__all-MiniLM-L6-v2"
SCIFACT = Path(__file__).resolve().parents[2] / "src/rankstack/data/embedded/scifact/corpus.jsonl.gz"
BM25_DOCS = int(os.environ.get("RANKSTACK_RAY_TEST_DOCS", 10_000))
NEURAL_DOCS = int(os.environ.get("RANKSTACK_RAY_TEST_NEURAL_DOCS", 200))
NEURAL_QUERIES = int(os.environ.get("RANKSTACK_RAY_TEST_NEURAL_QUERIES", 100))


@pytest.fixture(scope="package")
def cluster():
    from rankstack import distributed

    distributed.init(num_cpus=2, object_store_mb=256)
    yield ray
    ray.shutdown()


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
