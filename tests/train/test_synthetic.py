"""Synthetic queries: generation through a local model and an OpenAI-compatible endpoint, cleaning, and the
round-trip filter (the document must come back in the top k for its generated query)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rankstack.data.corpus import Document
from rankstack.errors import InputError
from rankstack.train.synthetic import EndpointGenerator, LocalGenerator, clean_query, synthetic_queries
from tests.train.conftest import DOCS

DOCUMENTS = [Document(i, t) for i, t in DOCS.items()]


class FirstWords:
    """Writes the first `n` words of each document as its query; "" for d8 (nothing usable)."""

    def __init__(self, n: int = 3):
        self.n = n

    def generate(self, documents):
        return ["" if "Antibiotic" in d else " ".join(d.split()[:self.n]) for d in documents]


class Scrambled:
    """Writes a query that only matches another document (d1's text for d2, and so on)."""

    def generate(self, documents):
        return [" ".join(documents[(i + 1) % len(documents)].split()[:4]) for i in range(len(documents))]


@pytest.fixture(scope="module")
def bm25(tmp_path_factory, corpus_file):
    from rankstack.retrieve.bm25 import BM25
    return BM25.build(corpus_file, tmp_path_factory.mktemp("idx") / "bm25", progress=False)


def test_round_trip_keeps_queries_that_find_their_document(bm25):
    made = synthetic_queries(DOCUMENTS, FirstWords(), filter_stage=bm25, k=1)
    assert made.generated == 8 and made.kept == 7  # d8's query was empty
    assert set(made.qrels) == set(made.queries) == {f"synthetic-d{i}" for i in range(1, 8)}
    assert made.queries["synthetic-d1"] == "Vitamin D supplementation"
    assert made.qrels["synthetic-d1"] == {"d1": 1}
    wrong = synthetic_queries(DOCUMENTS, Scrambled(), filter_stage=bm25, k=1)
    assert wrong.kept == 0
    unfiltered = synthetic_queries(DOCUMENTS, Scrambled())
    assert unfiltered.kept == 8


def test_clean_query():
    assert clean_query('  Query: "vitamin d and bones"\nmore text') == "vitamin d and bones"
    assert clean_query("\n\nsearch query: statins") == "statins"
    assert clean_query("a " * 50, max_words=5) == "a a a a a"
    assert clean_query("   ") == ""


def test_errors():
    with pytest.raises(InputError, match="no documents"):
        synthetic_queries([], FirstWords())

    class Short:
        def generate(self, documents):
            return ["x"]

    with pytest.raises(InputError, match="returned 1 queries for 8 documents"):
        synthetic_queries(DOCUMENTS, Short())
    with pytest.raises(InputError, match="must use exactly the fields"):
        EndpointGenerator("m", "http://localhost:1/v1", prompt="no field here")


def test_local_generator_with_a_tiny_causal_model(tmp_path):
    from tests.rerank.lm_models import build_llama

    pytest.importorskip("transformers")
    generator = LocalGenerator(str(build_llama(tmp_path / "llama")), max_new_tokens=4, batch_size=3, device="cpu",
                               chat=False)
    queries = generator.generate([d.contents for d in DOCUMENTS])
    assert len(queries) == 8 and all(isinstance(q, str) for q in queries)
    assert queries == generator.generate([d.contents for d in DOCUMENTS])  # greedy: the same every time


def test_endpoint_generator():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            document = body["messages"][-1]["content"].split("Document: ")[1]
            if "Antibiotic" in document:
                self.send_response(400)
                self.end_headers()
                return
            answer = {"choices": [{"message": {"role": "assistant",
                                               "content": "Query: " + " ".join(document.split()[:2])}}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        generator = EndpointGenerator("tiny", f"http://127.0.0.1:{server.server_address[1]}/v1", retries=0)
        queries = generator.generate([d.contents for d in DOCUMENTS])
    finally:
        server.shutdown()
    assert queries[0] == "Vitamin D" and queries[7] == ""  # a failed request gives no query
    assert len(seen) == 8 and all(b["model"] == "tiny" and b["temperature"] == 0.0 for b in seen)
