"""The HTTP API in process (starlette's TestClient): search, batch, rerank, fuse, documents, limits, metrics."""

import json

import pytest

from rankstack import Queries
from rankstack.data.qrels import Qrels
from rankstack.data.run import Run
from rankstack.evaluate import evaluate
from rankstack.pipeline.config import parse
from rankstack.retrieve.bm25 import BM25
from tests.serve.conftest import TOKEN, app_client, no_leak

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, collection_dir, indexes, cross_encoder_dir):
    from tests.serve.conftest import write_config

    config = write_config(tmp_path_factory.mktemp("app"), collection_dir, indexes, cross_encoder_dir,
                          {"limits": {"query_chars": 200, "k": 100, "batch": 8, "candidates": 50,
                                      "body_bytes": 20_000}})
    with app_client(config) as client:
        yield client, config.parent


def test_search_matches_the_pipeline_run_directly(served):
    client, root = served
    r = client.post("/api/search", json={"query": "vitamin D deficiency", "k": 5})
    assert r.status_code == 200, r.text
    data = r.json()
    expected = BM25(root / "bm25").search("vitamin D deficiency", 5)
    assert [(h["id"], h["rank"]) for h in data["hits"]] == [(d, i) for i, (d, _) in enumerate(expected, 1)]
    assert [h["score"] for h in data["hits"]] == pytest.approx([s for _, s in expected], rel=1e-6)
    assert data["pipeline"] == "BM25" and data["stages"] == ["BM25"]


def test_explain_gives_each_stages_score_and_text_marks_query_terms(served):
    client, root = served
    data = client.post("/api/search", json={"query": "vitamin D deficiency", "pipeline": "BM25 >> dense", "k": 5,
                                            "explain": True, "text": True}).json()
    assert data["stages"] == ["BM25", "BiEncoder"]
    bm25 = dict(BM25(root / "bm25").search("vitamin D deficiency", 20))
    for hit in data["hits"]:
        assert hit["stages"]["BM25"] == pytest.approx(bm25[hit["id"]], rel=1e-6)  # the first stage's own score
        assert hit["stages"]["BiEncoder"] == pytest.approx(hit["score"])          # the last stage's is the score
        marked = {piece.lower() for piece, on in hit["title"] + hit["snippet"] if on}
        assert marked and marked <= {"vitamin", "d", "deficiency", "deficient", "vitamins"}
        doc = client.get(f"/api/documents/{hit['id']}").json()
        assert "".join(p for p, _ in hit["title"]) == doc["title"]


def test_id_filter_keeps_only_the_given_documents(served):
    client, root = served
    everything = [h["id"] for h in client.post("/api/search", json={"query": "cancer", "k": 50}).json()["hits"]]
    allowed = everything[3:8] + ["not-a-document"]
    data = client.post("/api/search", json={"query": "cancer", "k": 3, "ids": allowed}).json()
    assert [h["id"] for h in data["hits"]] == everything[3:6]


def test_judged_query_gets_relevance_marks_and_the_ndcg_of_evaluate(served, collection_dir):
    client, _ = served
    queries = Queries.read(collection_dir / "queries.jsonl")
    qrels = Qrels.read(collection_dir / "qrels.tsv")
    qid = next(iter(queries))
    data = client.post("/api/search", json={"query": queries[qid], "qid": qid, "k": 10}).json()
    assert data["judged"] is True
    for hit in data["hits"]:
        assert hit["relevance"] == qrels[qid].get(hit["id"])
    run = Run.from_dict({qid: {h["id"]: h["score"] for h in data["hits"]}})
    assert data["ndcg@10"] == pytest.approx(evaluate(run, qrels.subset([qid]), ["nDCG@10"]).value("nDCG@10", qid))
    assert client.post("/api/search", json={"query": "x", "qid": "nope"}).json()["judged"] is False
    listed = client.get("/api/queries").json()["queries"]
    assert [q["id"] for q in listed] == list(queries)


def test_batch_search_equals_the_pipeline_on_all_queries(served):
    client, root = served
    queries = {"a": "vitamin D", "b": "gene expression", "c": "zzzz unmatched"}
    data = client.post("/api/search/batch", json={"queries": [{"id": q, "query": t} for q, t in queries.items()],
                                                  "k": 4}).json()
    run = parse("bm25 % 4", {"bm25": BM25(root / "bm25")})(Queries(queries))
    assert {r["id"]: [(h["id"]) for h in r["hits"]] for r in data["results"]} == \
        {q: run.ids(q) if q in run else [] for q in queries}
    plain = client.post("/api/search/batch", json={"queries": ["vitamin D", "gene expression"], "k": 2}).json()
    assert [r["id"] for r in plain["results"]] == ["0", "1"]


def test_rerank_with_texts_and_with_ids(served):
    client, _ = served
    by_text = client.post("/api/rerank", json={"query": "zebra stripes", "pipeline": "ce", "candidates": [
        {"id": "x", "text": "zebras have black and white stripes"}, {"text": "an unrelated text about bonds"},
        {"id": "y", "text": "striped animals of africa"}]}).json()
    assert sorted(h["id"] for h in by_text["hits"]) == ["#1", "x", "y"]
    scores = [h["score"] for h in by_text["hits"]]
    assert scores == sorted(scores, reverse=True)
    ids = [h["id"] for h in client.post("/api/search", json={"query": "cancer", "k": 6}).json()["hits"]]
    by_id = client.post("/api/rerank", json={"query": "cancer", "pipeline": "rescore", "candidates": ids, "k": 4})
    assert by_id.status_code == 200, by_id.text
    assert len(by_id.json()["hits"]) == 4 and {h["id"] for h in by_id.json()["hits"]} <= set(ids)
    # the same scores as the BM25 >> dense pipeline gives those candidates
    direct = client.post("/api/rerank", json={"query": "cancer", "pipeline": "ce", "candidates": ids}).json()
    assert sorted(h["id"] for h in direct["hits"]) == sorted(ids)  # texts read from the collection
    missing = client.post("/api/rerank", json={"query": "q", "pipeline": "rescore", "candidates": ["nope"]})
    assert missing.status_code == 400 and "nope" in missing.json()["message"]
    no_leak(missing)
    first = client.post("/api/rerank", json={"query": "q", "pipeline": "BM25", "candidates": ["a"]})
    assert first.status_code == 400 and "first stage" in first.json()["message"]


def test_fuse_runs_and_pipelines(served):
    client, _ = served
    runs = [[{"id": "a", "score": 3}, {"id": "b", "score": 2}], [{"id": "b", "score": 9}, {"id": "c", "score": 1}]]
    data = client.post("/api/fuse", json={"runs": runs, "k": 3}).json()
    assert [h["id"] for h in data["hits"]] == ["b", "a", "c"]
    assert data["hits"][0]["score"] == pytest.approx(1 / 62 + 1 / 61)
    fused = client.post("/api/fuse", json={"pipelines": ["BM25", "dense"], "query": "cancer", "k": 5}).json()
    assert len(fused["hits"]) == 5
    bad = client.post("/api/fuse", json={"runs": runs, "pipelines": ["BM25"], "query": "x"})
    assert bad.status_code == 422


def test_counts_and_scores_must_be_json_numbers(served):
    """`true`, `"3"` or `3.0` is no count and `true` no score: 422, not a silent 1 (pydantic's lax mode took them)."""
    client, _ = served
    for k in (True, "3", 3.0):
        for path, body in (("/api/search", {"query": "cancer"}), ("/api/search/batch", {"queries": ["cancer"]}),
                           ("/api/fuse", {"pipelines": ["BM25"], "query": "cancer"})):
            response = client.post(path, json={**body, "k": k})
            assert response.status_code == 422, (path, k, response.text)
    def runs(score):
        return {"runs": [[{"id": "a", "score": score}], [{"id": "b", "score": 2.5}]]}

    assert client.post("/api/fuse", json=runs(True)).status_code == 422
    assert client.post("/api/fuse", json=runs(3)).status_code == 200  # an integer is a number
    assert client.post("/api/search", json={"query": "cancer", "k": 3}).status_code == 200


def test_pipelines_collection_and_documents(served):
    client, _ = served
    pipelines = {p["name"]: p for p in client.get("/api/pipelines").json()["pipelines"]}
    assert pipelines["BM25 >> dense"]["expression"] == "bm25 % 20 >> BiEncoder(index=dense)"
    assert pipelines["BM25 >> dense"]["stages"] == ["BM25", "BiEncoder"]
    assert pipelines["rescore"]["first_stage"] is False
    info = client.get("/api/collection").json()
    assert info["documents"] == 300 and info["has_qrels"] and info["writes_enabled"]
    assert info["limits"]["k"] == 100
    hit = client.post("/api/search", json={"query": "cancer", "k": 1}).json()["hits"][0]
    doc = client.get(f"/api/documents/{hit['id']}", params={"query": "cancer"}).json()
    assert any(on for _, on in doc["segments"]["title"] + doc["segments"]["text"])
    assert client.get("/api/documents/nope").status_code == 404


@pytest.mark.parametrize("request_body, limit", [
    ({"query": "x" * 201}, "query_chars"),
    ({"query": "x", "k": 101}, "k"),
])
def test_search_limits_are_4xx_naming_the_limit(served, request_body, limit):
    client, _ = served
    r = client.post("/api/search", json=request_body)
    assert r.status_code == 400 and r.json()["limit"] == limit and limit in r.json()["message"]


def test_batch_candidates_and_body_limits(served):
    client, _ = served
    r = client.post("/api/search/batch", json={"queries": ["q"] * 9})
    assert r.status_code == 400 and r.json()["limit"] == "batch"
    r = client.post("/api/rerank", json={"query": "q", "pipeline": "ce", "candidates": [f"d{i}" for i in range(51)]})
    assert r.status_code == 400 and r.json()["limit"] == "candidates"
    r = client.post("/api/documents", headers=AUTH, json={"documents": [{"id": "big", "text": "x" * 30_000}]})
    assert r.status_code == 413 and r.json()["limit"] == "body_bytes"
    assert client.get("/api/documents/big").status_code == 404  # nothing written
    chunked = client.post("/api/search", content=iter([b'{"query": "', b"x" * 25_000, b'"}']),
                          headers={"content-type": "application/json"})  # no Content-Length: counted while read
    assert chunked.status_code == 413


def test_metrics_count_requests_time_pipelines_and_stages_and_record_batches(served):
    client, _ = served
    client.post("/api/search", json={"query": "vitamin", "pipeline": "BM25 >> dense"})
    text = client.get("/metrics").text
    assert 'rankstack_requests_total{method="POST",route="/api/search",status="200"}' in text
    assert 'rankstack_pipeline_seconds_count{pipeline="BM25 >> dense"}' in text
    assert 'rankstack_stage_seconds_count{pipeline="BM25 >> dense",stage="BiEncoder"}' in text
    assert 'rankstack_batch_items_count{model="DenseEncoder.encode_queries"}' in text
    assert 'rankstack_request_seconds_bucket{le="0.005",method="POST",route="/api/search"}' in text


def test_openapi_schema_lists_the_api(served):
    client, _ = served
    schema = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/search/batch", "/api/rerank", "/api/fuse", "/api/documents",
                 "/api/documents/{doc_id}", "/api/pipelines", "/health", "/ready", "/metrics"):
        assert path in schema["paths"], path


def test_errors_are_json_without_traces_or_paths(served):
    client, _ = served
    answers = [
        client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}),
        client.post("/api/search", json={"query": 3}),
        client.post("/api/search", json={"query": "x", "pipeline": "nope"}),
        client.post("/api/search", json={"query": "   "}),
        client.post("/api/search", json={"query": "x", "k": 0}),
        client.post("/api/search", json={"query": "x", "unknown": 1}),
        client.post("/api/search", json={"query": "x", "pipeline": "rescore"}),
        client.post("/api/rerank", json={"query": "q", "pipeline": "rescore", "candidates": ["a", "a"]}),
        client.post("/api/rerank", json={"query": "q", "pipeline": "ce", "candidates": [{}]}),
        client.post("/api/search", content=json.dumps({"query": "\ud800"}).encode(),
                    headers={"content-type": "application/json"}),
        client.post("/api/fuse", content=b'{"runs": [[{"id": "a", "score": NaN}], []]}',
                    headers={"content-type": "application/json"}),
        client.get("/api/documents/missing"),
        client.get("/nowhere"),
        client.delete("/api/pipelines"),
        client.get("/static/../../etc/passwd"),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        no_leak(r)


def test_an_internal_error_answers_500_without_its_message(served, monkeypatch):
    client, _ = served
    stage = client.app.state.service.collection.stages["bm25"]

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail in /srv/private/file.py")

    monkeypatch.setattr(stage, "transform", boom)
    r = client.post("/api/search", json={"query": "x", "pipeline": "BM25"})
    assert r.status_code == 500 and "secret" not in r.text
    no_leak(r)


def test_page_and_its_assets_are_served_with_a_strict_policy(served):
    client, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\"" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "https://" not in asset.text


def test_health_and_readiness(served):
    client, _ = served
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
