"""Fixtures for the command-line tests: a data root holding small collections in BEIR's layout (a slice of SciFact
under its own name, so that `beir/scifact` finds it first, and a hand-made ArguAna-style collection), and tiny
random-weight models."""

import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub

SLICE_QUERIES = 20
SLICE_DOCUMENTS = 300


def write_collection(folder: Path, documents: list[dict], queries: dict[str, str],
                     qrels: dict[str, dict[str, int]]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in documents)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{r}\n" for q, docs in qrels.items() for d, r in docs.items())
    return folder


#: ArguAna-style: every query is itself a document of the corpus (same id), so it ranks first for itself; the
#: relevant document is its counter-argument.
ARGUMENTS = {
    "a1": ("School uniforms should be mandatory", "uniforms reduce bullying and peer pressure in school uniforms"),
    "a2": ("Uniforms stifle expression", "school uniforms limit student expression and cost families money"),
    "a3": ("Nuclear power is safe", "nuclear power plants emit little carbon and accidents are rare"),
    "a4": ("Nuclear waste is a risk", "nuclear waste stays dangerous for millennia and plants cost a lot"),
    "a5": ("Cities need more bike lanes", "bike lanes cut traffic and pollution in cities"),
    "a6": ("Bike lanes hurt shops", "removing parking for bike lanes hurts shops in cities"),
}
ARGUANA_QUERIES = {"a1": ARGUMENTS["a1"][1], "a3": ARGUMENTS["a3"][1], "a5": ARGUMENTS["a5"][1]}
ARGUANA_QRELS = {"a1": {"a2": 1}, "a3": {"a4": 1}, "a5": {"a6": 1}}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A RANKSTACK_DATA folder with `scifact` (20 test queries, their judged documents and others: 300 documents)
    and `arguana` (hand-made, above)."""
    from rankstack.data import datasets

    root = tmp_path_factory.mktemp("data")
    full = datasets.load("beir/scifact")
    qids = list(full.queries)[:SLICE_QUERIES]
    qrels = {q: dict(full.qrels[q]) for q in qids}
    judged = {d for docs in qrels.values() for d in docs}
    documents, others = [], SLICE_DOCUMENTS - len(judged)
    for doc in full.corpus:
        if doc.id in judged or others > 0:
            others -= doc.id not in judged
            documents.append({"_id": doc.id, "title": doc.title, "text": doc.text})
    write_collection(root / "scifact", documents, {q: full.queries[q] for q in qids}, qrels)
    write_collection(root / "arguana", [{"_id": i, "title": t, "text": x} for i, (t, x) in ARGUMENTS.items()],
                     ARGUANA_QUERIES, ARGUANA_QRELS)
    return root


@pytest.fixture
def data(data_root, monkeypatch, tmp_path) -> Path:
    """The data root in RANKSTACK_DATA, an empty download cache, and a fresh working directory."""
    monkeypatch.setenv("RANKSTACK_DATA", str(data_root))
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return data_root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models: `mlm` and `other` (two seeds of one shape) and a cross-encoder `ce`."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.cli.models import tiny_cross_encoder, tiny_mlm

    root = tmp_path_factory.mktemp("models")
    return {"mlm": tiny_mlm(root / "mlm", 0), "other": tiny_mlm(root / "other", 1),
            "ce": tiny_cross_encoder(root / "ce")}
