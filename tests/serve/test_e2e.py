"""End to end against a real `rankstack serve` process on localhost, through HTTP clients: search, batch, rerank,
add, replace, delete, searches that see the changes, `kill -9` and a restart that keeps every acknowledged write;
the MCP tools over streamable HTTP."""

import asyncio
import concurrent.futures

from tests.serve.conftest import TOKEN, ServerProcess

ZEBRA = {"id": "zebra-1", "title": "Zebra stripes", "text": "Zebra stripes deter biting horseflies from landing."}


def ids(response):
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def test_search_write_kill_restart(make_config, token_file):
    config = make_config()
    server = ServerProcess(config, token_file).start()
    try:
        with server.client() as reader, server.client(TOKEN) as writer:
            # reads
            top = ids(reader.post("/api/search", json={"query": "vitamin D deficiency", "k": 5}))
            assert len(top) == 5
            rescored = ids(reader.post("/api/search", json={"query": "vitamin D deficiency", "k": 5,
                                                            "pipeline": "BM25 >> dense"}))
            assert set(rescored) <= set(ids(reader.post("/api/search", json={"query": "vitamin D deficiency",
                                                                              "k": 20})))
            batch = reader.post("/api/search/batch", json={"queries": ["vitamin D deficiency", "cancer"], "k": 5})
            assert [h["id"] for h in batch.json()["results"][0]["hits"]] == top
            reranked = reader.post("/api/rerank", json={"query": "vitamin D", "pipeline": "ce", "candidates": top})
            assert sorted(ids(reranked)) == sorted(top)

            # add: both indexes take it, every pipeline sees it
            assert "zebra-1" not in ids(reader.post("/api/search", json={"query": "zebra stripes"}))
            r = writer.post("/api/documents", json={"documents": [ZEBRA]})
            assert r.status_code == 200 and r.json() == {"added": 1, "ids": ["zebra-1"]}
            assert ids(reader.post("/api/search", json={"query": "zebra stripes horseflies"}))[0] == "zebra-1"
            assert "zebra-1" in ids(reader.post("/api/search", json={"query": "zebra stripes", "pipeline": "dense",
                                                                     "k": 100}))
            assert "zebra-1" in ids(reader.post("/api/rerank", json={"query": "zebra", "pipeline": "rescore",
                                                                     "candidates": ["zebra-1", top[0]]}))
            # replace, then delete another document
            r = writer.put("/api/documents/zebra-1", json={"title": "Zebra", "text": "Okapis are not zebras."})
            assert r.status_code == 200 and r.json() == {"id": "zebra-1", "created": False}
            assert reader.get("/api/documents/zebra-1").json()["text"] == "Okapis are not zebras."
            assert ids(reader.post("/api/search", json={"query": "okapis"})) == ["zebra-1"]
            assert writer.delete(f"/api/documents/{top[0]}").json() == {"deleted": top[0]}
            assert top[0] not in ids(reader.post("/api/search", json={"query": "vitamin D deficiency", "k": 5}))
            assert reader.get(f"/api/documents/{top[0]}").status_code == 404
            assert writer.delete(f"/api/documents/{top[0]}").status_code == 404

            # writes interleaved with concurrent reads: every request answered
            def read(i):
                body = {"query": "cancer cells", "pipeline": "BM25 >> dense"}
                return reader.post("/api/search", json=body).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                reads = [pool.submit(read, i) for i in range(24)]
                writes = [writer.post("/api/documents", json={"documents": [
                    {"id": f"extra-{i}", "text": f"extra document {i} about cancer cells"}]}).status_code
                    for i in range(4)]
                assert writes == [200] * 4 and [f.result() for f in reads] == [200] * 24
        server.kill9()  # right after the last acknowledged write: no shutdown code runs

        server = ServerProcess(config, token_file).start()
        with server.client() as reader:
            assert reader.get("/api/documents/zebra-1").json()["text"] == "Okapis are not zebras."
            assert ids(reader.post("/api/search", json={"query": "okapis"})) == ["zebra-1"]
            assert "zebra-1" in ids(reader.post("/api/search", json={"query": "okapis zebras", "pipeline": "dense",
                                                                     "k": 100}))
            assert reader.get(f"/api/documents/{top[0]}").status_code == 404
            assert all(reader.get(f"/api/documents/extra-{i}").status_code == 200 for i in range(4))
            assert reader.get("/api/collection").json()["documents"] == 300 + 1 - 1 + 4
    finally:
        server.stop()


def test_mcp_tools_search_and_fetch_documents(make_config):
    from mcp import Client

    server = ServerProcess(make_config()).start()
    try:
        async def session():
            async with Client(f"{server.url}/mcp") as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                found = await client.call_tool("search", {"query": "vitamin D deficiency", "k": 3})
                hits = found.structured_content["hits"]
                document = await client.call_tool("fetch_document", {"id": hits[0]["id"]})
                missing = await client.call_tool("fetch_document", {"id": "no-such-document"})
                unknown = await client.call_tool("search", {"query": "x", "pipeline": "nope"})
                bad_k = [await client.call_tool("search", {"query": "x", "k": k}) for k in (True, "3", 0, 2.5)]
                return tools, hits, document, missing, unknown, bad_k

        tools, hits, document, missing, unknown, bad_k = asyncio.run(session())
        assert {"search", "fetch_document"} <= tools
        with server.client() as http:
            assert [h["id"] for h in hits] == ids(http.post("/api/search", json={"query": "vitamin D deficiency",
                                                                                 "k": 3}))
            assert document.structured_content == http.get(f"/api/documents/{hits[0]['id']}").json()
        assert any(word in hits[0]["snippet"].lower() for word in ("vitamin", "deficien"))
        assert missing.is_error and "no document" in missing.content[0].text
        assert unknown.is_error and "unknown pipeline" in unknown.content[0].text
        assert all(answer.is_error and "k" in answer.content[0].text for answer in bad_k)  # a count, not true or "3"
    finally:
        server.stop()


def test_a_config_that_cannot_load_stops_the_server_with_a_message(tmp_path):
    import json
    import subprocess
    import sys

    from tests.serve.conftest import ROOT

    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"pipelines": {"x": "BM25('no-such-index')"}}))
    result = subprocess.run([sys.executable, "-m", "rankstack.cli", "serve", str(config), "--port", "0"],
                            capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "src"),
                                                                              "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "rankstack: error: cannot serve" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_config_is_refused_before_serving(tmp_path, capsys):
    from rankstack.cli import main

    config = tmp_path / "serve.json"
    config.write_text('{"pipelines": {"a": "x"}, "serve": {"limits": {"k": 0}}}')
    assert main(["serve", str(config)]) == 2
    assert "limit k must be a positive number" in capsys.readouterr().err
