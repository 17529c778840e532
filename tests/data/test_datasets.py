import http.server
import io
import threading
import zipfile
from functools import partial

import pytest

from rankstack.data import datasets
from rankstack.errors import DatasetNotFoundError


def test_embedded_scifact_loads_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("RANKSTACK_DATA", "")
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path))
    ds = datasets.load("beir/scifact", download=False)
    assert ds.root == datasets.EMBEDDED / "scifact"
    assert len(ds.queries) == 300 and len(ds.qrels) == 300 and ds.qrels.num_judgments() == 339
    assert sum(1 for _ in ds.corpus) == 5183
    assert len(datasets.load("beir/scifact/train").queries) == 809


def test_dl2019_from_data_root(monkeypatch, shared_data):
    monkeypatch.setenv("RANKSTACK_DATA", str(shared_data))
    ds = datasets.load("msmarco-passage/trec-dl-2019")
    assert len(ds.queries) == 43
    run = ds.run
    assert len(run) == 43 and all(len(run[q].docnos) == 100 for q in run)


def test_unknown_and_unavailable(monkeypatch, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="unknown collection 'beir/nope'"):
        datasets.load("beir/nope")
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="not available locally"):
        datasets.load("beir/nfcorpus", download=False)
    with pytest.raises(DatasetNotFoundError, match="no first-stage run"):
        datasets.load("beir/scifact").run


def test_beir_download_into_cache(monkeypatch, tmp_path):
    """The real download path, served from a loopback HTTP server instead of the BEIR host."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("nfcorpus/corpus.jsonl", '{"_id": "d1", "title": "t", "text": "hello world"}\n')
        z.writestr("nfcorpus/queries.jsonl", '{"_id": "q1", "text": "hello"}\n')
        z.writestr("nfcorpus/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    served = tmp_path / "served"
    served.mkdir()
    (served / "nfcorpus.zip").write_bytes(archive.getvalue())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(datasets, "BEIR_URL", f"http://127.0.0.1:{server.server_port}/{{name}}.zip")
        monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("RANKSTACK_DATA", "")
        ds = datasets.load("beir/nfcorpus")
        assert ds.root == tmp_path / "cache" / "nfcorpus"
        assert [d.id for d in ds.corpus] == ["d1"] and dict(ds.queries) == {"q1": "hello"}
        assert datasets.load("beir/nfcorpus", download=False).root == ds.root  # now cached
        monkeypatch.setattr(datasets, "BEIR_URL", f"http://127.0.0.1:{server.server_port}/missing/{{name}}.zip")
        with pytest.raises(DatasetNotFoundError, match="could not download"):
            datasets.load("beir/fiqa")
    finally:
        server.shutdown()
