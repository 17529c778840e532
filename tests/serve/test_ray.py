"""The service backed by a Ray cluster: a config whose stages are sharded (BM25 and dense, 2 shards each, served by
shard actors) and whose cross-encoder runs on an actor pool answers every request as the one-node service answers
it over the same documents (ids, scores, snippets, judgments); a shard actor killed while requests run is survived;
`rankstack serve` connects to a cluster by address and stops cleanly; no Ray, or a cluster that does not answer,
is a clear error."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.serve.conftest import ROOT, ServerProcess, app_client, free_port

pytest.importorskip("ray")

PIPELINES = {"BM25": "bm25 % 100", "dense": "dense % 100", "hybrid": "(bm25 % 50 | dense % 50).rrf() % 50",
             "BM25 >> ce": "bm25 % 20 >> {ce}", "ce": "{ce}"}


def write(folder, stages: dict, ce: str, collection_dir, **extra):
    config = {"stages": stages, "pipelines": {n: p.format(ce=ce) for n, p in PIPELINES.items()},
              "queries": str(collection_dir / "queries.jsonl"), "qrels": str(collection_dir / "qrels.tsv"),
              "serve": {"model_threads": 1}, **extra}  # one torch thread, as in the reranker's actor
    path = folder / f"{'ray' if 'ray' in extra else 'one-node'}.json"
    path.write_text(json.dumps(config, indent=1))
    return path


@pytest.fixture(scope="module")
def configs(ray_cluster, tmp_path_factory, collection_dir, encoder_dir, cross_encoder_dir):
    """(one-node config, Ray config) over the same documents: BM25 and dense indexes, and their 2-shard builds
    (the dense ones from the same encoded parts, so that both hold the same vectors)."""
    from rankstack import distributed
    from rankstack.encoders import DenseEncoder
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense

    root = tmp_path_factory.mktemp("ray-serve")
    corpus = collection_dir / "corpus.jsonl"
    BM25.build(corpus, root / "bm25", progress=False)
    distributed.build(corpus, root / "bm25-shards", "bm25", shards=2, part_size=100, progress=False)
    encoder = DenseEncoder(str(encoder_dir), progress=False)
    distributed.build(corpus, root / "dense-shards", "dense", encoder, shards=2, part_size=100, parts=root / "parts",
                      keep_parts=True, progress=False)
    Dense.build(corpus, root / "dense", encoder, shards=root / "parts", shard_size=100)
    ce = f"CrossEncoder({str(cross_encoder_dir)!r}, texts={str(corpus)!r}, depth=None)"
    one = write(root, {"bm25": "BM25('bm25')", "dense": "Dense('dense')"}, ce, collection_dir)
    on_ray = write(root, {"bm25": "ShardedBM25('bm25-shards')", "dense": "ShardedDense('dense-shards')"},
                   f"RemoteReranker({ce}, actors=1)", collection_dir, ray={"num_cpus": 2})
    return one, on_ray


@pytest.fixture(scope="module")
def clients(configs):
    """In-process clients of the one-node app and the Ray app (loaded, ready), for the module."""
    with app_client(configs[0]) as one, app_client(configs[1]) as on_ray:
        yield one, on_ray


def judged(collection_dir) -> dict[str, str]:
    with open(collection_dir / "queries.jsonl", encoding="utf-8") as f:
        return {row["_id"]: row["text"] for row in map(json.loads, f)}


def answer(client, path: str, body: dict) -> dict:
    """The response, less what may differ between servers: the time taken and the stages' class names."""
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    data.pop("took_ms", None)
    data.pop("stages", None)
    for hit in data.get("hits", []):
        if "stages" in hit:
            hit["stages"] = list(hit["stages"].values())  # scores by step, without the class names
    return data


def test_a_service_on_ray_answers_as_the_one_node_service(clients, collection_dir):
    one, on_ray = clients
    queries = judged(collection_dir)
    for name in PIPELINES:
        if name == "ce":
            continue
        for qid, text in queries.items():
            body = {"query": text, "pipeline": name, "k": 10, "qid": qid, "explain": True, "text": True}
            expected = answer(one, "/api/search", body)
            assert answer(on_ray, "/api/search", body) == expected, (name, qid)
            assert len(expected["hits"]) == 10 and "snippet" in expected["hits"][0]
    for name in ("BM25", "dense", "hybrid"):
        body = {"queries": [{"id": q, "query": t} for q, t in queries.items()], "pipeline": name, "k": 100}
        expected = answer(one, "/api/search/batch", body)
        assert answer(on_ray, "/api/search/batch", body) == expected, name
        assert sum(len(r["hits"]) for r in expected["results"]) >= 30 * 50
    top = [h["id"] for h in answer(one, "/api/search", {"query": "vitamin D", "k": 15})["hits"]]
    body = {"query": "vitamin D", "pipeline": "ce", "candidates": top}
    assert answer(on_ray, "/api/rerank", body) == answer(one, "/api/rerank", body)
    for doc_id in top[:3]:  # documents by id, read from the shards' stored documents
        assert on_ray.get(f"/api/documents/{doc_id}?query=vitamin").json() == \
            one.get(f"/api/documents/{doc_id}?query=vitamin").json()
    assert on_ray.get("/api/documents/no-such-id").status_code == 404
    assert on_ray.get("/api/collection").json() == one.get("/api/collection").json()  # size, judgments, ...


def test_a_shard_actor_killed_while_requests_run_is_survived(clients, collection_dir):
    one, on_ray = clients
    queries = judged(collection_dir)
    bodies = [{"query": t, "pipeline": p, "k": 20} for t in queries.values() for p in ("BM25", "hybrid")]
    expected = [answer(one, "/api/search", b) for b in bodies]
    stage = on_ray.app.state.service.collection.stages["bm25"]
    before = stage.pool.status()[1][0]["pid"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(answer, on_ray, "/api/search", b) for b in bodies]
        os.kill(before, signal.SIGKILL)  # while the requests run
        answers = [f.result() for f in futures]
    assert answers == expected
    assert answer(on_ray, "/api/search", bodies[0]) == expected[0]
    assert stage.pool.status()[1][0]["pid"] != before  # Ray started the shard server again


def shard_servers(ray) -> int:
    from ray._private import state

    return sum(1 for a in state.actors().values() if a["ActorClassName"].endswith("ShardServer")
               and a["State"] == "ALIVE")


def test_rankstack_serve_on_a_cluster_by_address_stops_cleanly(configs, collection_dir, token_file, ray_cluster):
    one_config, ray_config = configs
    config = json.loads(ray_config.read_text())
    config["ray"] = {"address": ray_cluster.get_runtime_context().gcs_address}
    config["stages"], config["pipelines"] = {"bm25": config["stages"]["bm25"]}, {"BM25": config["pipelines"]["BM25"]}
    path = ray_config.with_name("by-address.json")
    path.write_text(json.dumps(config))
    running = shard_servers(ray_cluster)
    server = ServerProcess(path, token_file).start()
    try:
        assert shard_servers(ray_cluster) == running + 2
        text = next(iter(judged(collection_dir).values()))
        with server.client() as client, app_client(one_config) as one:
            body = {"query": text, "pipeline": "BM25", "k": 10}
            assert answer(client, "/api/search", body) == answer(one, "/api/search", body)
    finally:
        server.stop()
    log = server.log.read_text()
    # uvicorn shuts down, then raises the signal it caught again: the exit status says SIGTERM
    assert server.process.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]
    deadline = time.monotonic() + 30
    while shard_servers(ray_cluster) > running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shard_servers(ray_cluster) == running  # its shard servers are gone; the cluster serves on
    assert ray_cluster.is_initialized() and ray_cluster.cluster_resources().get("CPU") == 2


def test_a_cluster_that_does_not_answer_is_a_clear_error(configs, tmp_path):
    config = json.loads(configs[1].read_text())
    config["ray"] = {"address": f"127.0.0.1:{free_port()}"}
    path = tmp_path / "unreachable.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rankstack.cli", "serve", str(path), "--port", str(free_port())],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and time.monotonic() - start < 100
    assert "does not answer" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_ray_settings_are_checked(tmp_path, monkeypatch):
    from rankstack.errors import InputError
    from rankstack.serve.config import read_config

    path = tmp_path / "serve.json"
    for ray, message in (({"adress": "auto"}, "unknown ray settings"), ({"num_cpus": 0}, "positive integer"),
                         ({"address": "auto", "num_cpus": 2}, "sizes a local cluster"), ("auto", "must be"),
                         ({"address": 6379}, "ray.address")):
        path.write_text(json.dumps({"pipelines": {"p": "BM25('x')"}, "ray": ray}))
        with pytest.raises(InputError, match=message):
            read_config(path)
    path.write_text(json.dumps({"pipelines": {"p": "BM25('x')"}, "ray": {"num_cpus": 2}}))
    assert read_config(path).ray.num_cpus == 2
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(InputError, match=r"needs Ray: pip install 'rankstack\[ray\]'"):
        read_config(path)
