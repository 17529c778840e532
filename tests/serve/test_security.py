"""Access and limits: writes need the token and change nothing without it; the token stays out of logs; reads can be
token-protected; CORS as configured; the request-time limit holds against a query designed to be slow."""

import logging
import threading
import time

import pytest

from tests.serve.conftest import TOKEN, app_client, build_cross_encoder, no_leak

DOC = {"id": "zebra-1", "title": "Zebras", "text": "zebra stripes confuse biting flies"}


def _state(client):
    """What a write could change: the zebra search, the document, the collection size."""
    hits = client.post("/api/search", json={"query": "zebra stripes", "k": 5}, headers=_auth()).json()["hits"]
    return ([h["id"] for h in hits], client.get("/api/documents/zebra-1", headers=_auth()).status_code,
            client.get("/api/collection", headers=_auth()).json()["documents"])


def _auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, _auth("wrong-token-000000"), {"Authorization": TOKEN},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_writes_without_the_token_are_refused_and_change_nothing(make_config, headers):
    with app_client(make_config()) as client:
        before = _state(client)
        hit = client.post("/api/search", json={"query": "cancer", "k": 1}).json()["hits"][0]["id"]
        answers = [client.post("/api/documents", json={"documents": [DOC]}, headers=headers),
                   client.put(f"/api/documents/{hit}", json={"text": "overwritten"}, headers=headers),
                   client.delete(f"/api/documents/{hit}", headers=headers)]
        for r in answers:
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            no_leak(r)
        assert _state(client) == before
        assert client.get(f"/api/documents/{hit}").json()["text"] != "overwritten"
        r = client.post("/api/documents", json={"documents": [DOC]}, headers=_auth())  # the right token writes
        assert r.status_code == 200 and _state(client) != before


def test_without_a_configured_token_no_write_passes(make_config):
    with app_client(make_config(), token=None) as client:
        r = client.post("/api/documents", json={"documents": [DOC]}, headers=_auth())
        assert r.status_code == 401 and "none configured" in r.json()["message"]
        assert client.get("/api/collection").json()["writes_enabled"] is False


def test_the_token_never_reaches_the_log(make_config, caplog):
    caplog.set_level(logging.DEBUG)
    with app_client(make_config()) as client:
        client.post("/api/documents", json={"documents": [DOC]}, headers=_auth())
        client.post("/api/documents", json={"documents": [DOC]}, headers=_auth("wrong-token-000000"))
        client.post("/api/search", json={"query": "x", "pipeline": "nope"}, headers=_auth())
    assert caplog.records and TOKEN not in caplog.text and "wrong-token-000000" not in caplog.text


def test_protected_reads_need_the_token(make_config):
    with app_client(make_config({"reads": "token"})) as client:
        for r in (client.post("/api/search", json={"query": "cancer"}), client.get("/api/pipelines"),
                  client.get("/api/documents/x", headers=_auth("bad-token-0000000"))):
            assert r.status_code == 401
        assert client.post("/api/search", json={"query": "cancer"}, headers=_auth()).status_code == 200
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200


def test_cors_answers_only_the_configured_origins(make_config):
    with app_client(make_config({"cors": ["https://allowed.example"]})) as client:
        def preflight(origin):
            return client.options("/api/search", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "content-type"})
        assert preflight("https://allowed.example").headers["access-control-allow-origin"] == "https://allowed.example"
        assert "access-control-allow-origin" not in preflight("https://evil.example").headers
    with app_client(make_config(name="no-cors")) as client:
        r = client.get("/api/pipelines", headers={"Origin": "https://allowed.example"})
        assert "access-control-allow-origin" not in r.headers


def test_request_time_limit_holds_against_a_query_designed_to_be_slow(make_config, tmp_path):
    """A cross-encoder of 4 layers reranking every match of a long query of common words (up to all 300 SciFact
    documents, 256 tokens each): seconds of work, against a limit of 1 s. The answer is a 408 naming the limit,
    the server keeps answering meanwhile, and the work stops at the next model batch."""
    slow = build_cross_encoder(tmp_path / "slow-ce", 256, 4)
    config = make_config({"limits": {"request_seconds": 1}, "batching": {"window_ms": 1, "max_items": 8}},
                         name="slow")
    import json

    raw = json.loads(config.read_text())
    raw["pipelines"]["slow"] = f"bm25 % 1000 >> CrossEncoder({str(slow)!r}, texts='bm25', depth=None, max_length=256)"
    raw["pipelines"]["all"] = "bm25 % 1000"
    config.write_text(json.dumps(raw))
    query = " ".join(["the cells of patients with disease show increased expression and risk in the study"] * 10)
    with app_client(config) as client:
        matches = len(client.post("/api/search", json={"query": query, "pipeline": "all", "k": 300}).json()["hits"])
        assert matches >= 250  # nearly every document: hundreds of long pairs to score
        seen = {}

        def slow_request():
            start = time.monotonic()
            seen["response"] = client.post("/api/search", json={"query": query, "pipeline": "slow", "k": 10})
            seen["seconds"] = time.monotonic() - start

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.3)
        start = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - start < 0.5  # the event loop is free while the pipeline runs
        thread.join(30)
        r = seen["response"]
        assert r.status_code == 408 and r.json()["limit"] == "request_seconds", r.text
        assert seen["seconds"] < 2.5
        no_leak(r)
        time.sleep(3)  # the batch in flight when the limit passed finishes; no later batch starts
        batches = _count(client.get("/metrics").text, 'rankstack_batch_items_count{model="CrossEncoder.predict"}')
        time.sleep(2)
        assert _count(client.get("/metrics").text,
                      'rankstack_batch_items_count{model="CrossEncoder.predict"}') == batches
        assert batches < matches / 8  # far fewer batches than the whole rerank needs
        assert client.post("/api/search", json={"query": "cancer"}).status_code == 200


def _count(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
