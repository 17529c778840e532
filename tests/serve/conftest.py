"""Fixtures for the service tests: a small SciFact collection (300 documents with judged queries), BM25 and dense
indexes of it (a tiny random-weight encoder: mechanics, never quality), server configs, in-process apps and real
server processes on localhost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("mcp")
httpx = pytest.importorskip("httpx")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("faiss")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("RANKSTACK_SHARED_MODELS", Path(__file__).resolve().parents[3] / "shared" / "models"))
CONFIG_ONLY = MODELS / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only"
TOKEN = "test-token-0123456789"
N_DOCS = 300
N_QUERIES = 30


@pytest.fixture(scope="session")
def collection_dir(tmp_path_factory) -> Path:
    """corpus.jsonl (300 SciFact documents: the relevant ones of 30 test queries, then others), queries.jsonl and
    qrels.tsv of those 30 queries."""
    from rankstack.data import datasets

    out = tmp_path_factory.mktemp("collection")
    ds = datasets.load("beir/scifact")
    qids = [q for q in ds.queries if q in ds.qrels][:N_QUERIES]
    relevant = {d for q in qids for d in ds.qrels[q]}
    docs = [d for d in ds.corpus if d.id in relevant]
    for doc in ds.corpus:
        if len(docs) >= N_DOCS:
            break
        if doc.id not in relevant:
            docs.append(doc)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in qids:
            f.write(json.dumps({"_id": q, "text": ds.queries[q]}) + "\n")
    with open(out / "qrels.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{r}\n" for q in qids for d, r in ds.qrels[q].items())
    return out


def _need_models() -> None:
    if not CONFIG_ONLY.is_dir():
        pytest.skip(f"model folder not found: {CONFIG_ONLY}")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    """A one-layer BERT (hidden 32, random weights) with MiniLM's tokenizer: a fast dense encoder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    _need_models()
    out = tmp_path_factory.mktemp("models") / "tiny-dense"
    tokenizer = AutoTokenizer.from_pretrained(CONFIG_ONLY)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_cross_encoder(out: Path, hidden: int, layers: int) -> Path:
    """A MiniLM-shaped sequence classifier with random weights (hidden size and layers given)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    _need_models()
    config = AutoConfig.from_pretrained(CONFIG_ONLY, hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=max(2, hidden // 64), intermediate_size=4 * hidden)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-ce", 32, 1)


@pytest.fixture(scope="session")
def indexes(collection_dir, encoder_dir, tmp_path_factory) -> Path:
    """indexes/bm25 and indexes/dense of the collection (copy them before writing: see `served`)."""
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense

    out = tmp_path_factory.mktemp("indexes")
    BM25.build(collection_dir / "corpus.jsonl", out / "bm25", progress=False)
    Dense.build(collection_dir / "corpus.jsonl", out / "dense", str(encoder_dir), progress=False)
    return out


def write_config(directory: Path, collection_dir: Path, indexes: Path, cross_encoder_dir: Path | None = None,
                 serve: dict | None = None, **extra) -> Path:
    """A server config in `directory` over copies of the indexes (so that writes stay within one test)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("bm25", "dense"):
        if not (directory / name).exists():
            shutil.copytree(indexes / name, directory / name)
    pipelines = {"BM25": "bm25 % 100", "BM25 >> dense": "bm25 % 20 >> BiEncoder(index=dense)",
                 "dense": "dense % 100", "hybrid": "(bm25 % 50 | dense % 50).rrf() % 50",
                 "rescore": "BiEncoder(index=dense)"}
    if cross_encoder_dir is not None:
        pipelines["ce"] = f"CrossEncoder({str(cross_encoder_dir)!r}, texts='bm25', depth=None)"
    config = {"stages": {"bm25": "BM25('bm25')", "dense": "Dense('dense')"}, "pipelines": pipelines,
              "documents": ["bm25", "dense"], "queries": str(collection_dir / "queries.jsonl"),
              "qrels": str(collection_dir / "qrels.tsv"), "serve": serve or {}, **extra}
    path = directory / "serve.json"
    path.write_text(json.dumps(config, indent=1))
    return path


@pytest.fixture
def make_config(tmp_path, collection_dir, indexes, cross_encoder_dir):
    def make(serve: dict | None = None, name: str = "server", **extra) -> Path:
        return write_config(tmp_path / name, collection_dir, indexes, cross_encoder_dir, serve, **extra)
    return make


def wait_ready(get, timeout: float = 120) -> None:
    """Poll GET /ready until it answers 200."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = get("/ready")
            if last.status_code == 200:
                return
            if last.status_code == 503 and last.json().get("status") == "failed":
                raise AssertionError(f"the server failed to load: {last.json()}")
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server was not ready after {timeout}s (last answer: {last})")


def app_client(config: Path, token: str | None = TOKEN):
    """A TestClient of an in-process app (the caller enters it), ready when entered."""
    from starlette.testclient import TestClient

    from rankstack.serve.app import create_app
    from rankstack.serve.config import read_config

    class Client(TestClient):
        def __enter__(self):
            client = super().__enter__()
            wait_ready(client.get)
            return client

    return Client(create_app(read_config(config), token=token), raise_server_exceptions=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`rankstack serve CONFIG` in a child process on a free localhost port."""

    def __init__(self, config: Path, token_file: Path | None = None, *args: str):
        self.config, self.token_file, self.args = config, token_file, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "ServerProcess":
        command = [sys.executable, "-m", "rankstack.cli", "serve", str(self.config), "--port", str(self.port),
                   *(["--token-file", str(self.token_file)] if self.token_file else []), *self.args]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            try:
                wait_ready(client.get, timeout)
            except AssertionError:
                self.stop()
                raise AssertionError(f"{self.log.read_text()[-3000:]}") from None
        return self

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def client(self, token: str | None = None, **kwargs) -> "httpx.Client":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "token.txt"
    path.write_text(TOKEN + "\n")
    return path


def no_leak(response) -> None:
    """An error body is JSON with a message, without a stack trace or a file path."""
    body = response.text
    assert response.headers["content-type"].startswith("application/json"), body
    data = response.json()
    assert isinstance(data.get("message"), str) and data["message"], data
    for needle in ("Traceback", 'File "', "site-packages", ".py\"", "/tmp/", "/work/", str(ROOT), "\\\\"):
        assert needle not in body, f"{needle!r} leaks in {body}"
