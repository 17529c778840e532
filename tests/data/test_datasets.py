import gzip
import http.server
import io
import sys
import threading
import types
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


def serve(folder):
    """A loopback HTTP server over `folder`; returns (base URL, server)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def test_cqadupstack_loads_per_forum(monkeypatch, tmp_path):
    """BEIR's cqadupstack.zip holds one folder per forum; each forum is a collection, downloaded once for all."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for forum in ("android", "gaming"):
            z.writestr(f"cqadupstack/{forum}/corpus.jsonl", f'{{"_id": "{forum}1", "title": "", "text": "{forum}"}}\n')
            z.writestr(f"cqadupstack/{forum}/queries.jsonl", f'{{"_id": "q{forum}", "text": "{forum}?"}}\n')
            z.writestr(f"cqadupstack/{forum}/qrels/test.tsv", f"query-id\tcorpus-id\tscore\nq{forum}\t{forum}1\t1\n")
    served = tmp_path / "served"
    served.mkdir()
    (served / "cqadupstack.zip").write_bytes(archive.getvalue())
    url, server = serve(served)
    try:
        monkeypatch.setattr(datasets, "BEIR_URL", f"{url}/{{name}}.zip")
        monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("RANKSTACK_DATA", "")
        android = datasets.load("beir/cqadupstack/android")
        assert [d.id for d in android.corpus] == ["android1"] and list(android.queries) == ["qandroid"]
        (served / "cqadupstack.zip").unlink()  # the other forum comes from the same download
        gaming = datasets.load("beir/cqadupstack/gaming/test")
        assert gaming.root == tmp_path / "cache" / "cqadupstack" / "gaming" and dict(gaming.queries) == {
            "qgaming": "gaming?"}
    finally:
        server.shutdown()
    with pytest.raises(DatasetNotFoundError, match="load beir/cqadupstack/<forum>, one of android, english"):
        datasets.load("beir/cqadupstack")
    assert "beir/cqadupstack/wordpress" in datasets.names() and "beir/cqadupstack" not in datasets.names()


def test_trec_dl_download_says_how_to_get_its_bm25_run(monkeypatch, tmp_path):
    """The official archives: top-1000 candidates (no ranked run) and NIST's qrels; the BM25 run the shared copies
    have must be built, and the error says how."""
    served = tmp_path / "served"
    served.mkdir()
    with gzip.open(served / "msmarco-passagetest2019-top1000.tsv.gz", "wt") as f:
        f.write("19335\t7\tanthropological definition of environment\tpassage seven\n"
                "19335\t8\tanthropological definition of environment\tpassage eight\n"
                "99\t9\tunjudged query\tpassage nine\n")
    (served / "2019qrels-pass.txt").write_text("19335 0 7 3\n19335 0 8 0\n")
    url, server = serve(served)
    try:
        monkeypatch.setattr(datasets, "MSMARCO_URL", f"{url}/{{file}}")
        monkeypatch.setattr(datasets, "NIST_URL", f"{url}/{{file}}")
        monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("RANKSTACK_DATA", "")
        ds = datasets.load("msmarco-passage/trec-dl-2019")
    finally:
        server.shutdown()
    assert dict(ds.queries) == {"19335": "anthropological definition of environment"}
    assert sorted(d.id for d in ds.corpus) == ["7", "8"] and ds.qrels["19335"] == {"7": 3, "8": 0}
    with pytest.raises(DatasetNotFoundError) as error:
        ds.run
    message = str(error.value)
    assert "bm25_top100.run.trec is missing" in message and "collection.tar.gz" in message
    assert "rankstack search idx/msmarco-passage --queries msmarco-passage/trec-dl-2019 -k 100 -o" in message
    (ds.root / "bm25_top100.run.trec").write_text("19335 Q0 8 1 9.5 bm25\n19335 Q0 7 2 9.1 bm25\n")
    assert ds.run.ids("19335") == ["8", "7"]  # supplied as the message says


def test_catalog_lists_existing_splits_and_where_they_are(monkeypatch, tmp_path, capsys):
    from rankstack.cli import main

    local = tmp_path / "data" / "nfcorpus" / "qrels"
    local.mkdir(parents=True)
    (local / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n")
    monkeypatch.setenv("RANKSTACK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
    entries = {e.name: e for e in datasets.catalog()}
    assert entries["beir/arguana"].splits == ("test",) and entries["beir/quora"].splits == ("test", "dev")
    assert entries["beir/scifact"].splits == ("test", "train") and entries["beir/msmarco"].splits[0] == "dev"
    assert entries["beir/scifact"].local == {"test": datasets.EMBEDDED / "scifact",
                                             "train": datasets.EMBEDDED / "scifact"}
    assert entries["beir/nfcorpus"].local == {"dev": tmp_path / "data" / "nfcorpus"} and not entries["beir/fiqa"].local
    for name in ("beir/arguana/train", "beir/nq/dev", "beir/scifact/dev"):
        with pytest.raises(DatasetNotFoundError, match="unknown collection"):
            datasets.load(name)
    assert main(["datasets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "yes: " + str(datasets.EMBEDDED / "scifact") in lines["beir/scifact"]
    assert "no (downloaded on first use)" in lines["beir/arguana"] and "test, dev" in lines["beir/quora"]
    assert "(not test, train)" in lines["beir/nfcorpus"]
    assert main(["datasets", "--local"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert "beir/scifact" in names and "beir/nfcorpus" in names and "beir/arguana" not in names


def test_any_ir_datasets_id_when_the_package_is_there(monkeypatch, tmp_path):
    """irds:<id> through ir_datasets' API (a stand-in module with its shape: docs, queries, qrels iterators)."""
    from collections import namedtuple

    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RANKSTACK_DATA", "")
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # not installed
    with pytest.raises(DatasetNotFoundError, match="needs the ir_datasets package"):
        datasets.load("irds:vaswani")
    Doc = namedtuple("Doc", "doc_id title body")
    Query = namedtuple("Query", "query_id text")
    Qrel = namedtuple("Qrel", "query_id doc_id relevance iteration")

    class Fake:
        def has_docs(self):
            return True

        has_queries = has_qrels = has_docs

        def docs_iter(self):
            return iter([Doc("d1", "Title", "first body"), Doc("d2", "", "second body")])

        def queries_iter(self):
            return iter([Query("1", "body")])

        def qrels_iter(self):
            return iter([Qrel("1", "d2", 2, "0")])

    def load(dataset_id):
        if dataset_id != "fake/test":
            raise KeyError(dataset_id)
        return Fake()

    monkeypatch.setitem(sys.modules, "ir_datasets", types.SimpleNamespace(load=load))
    ds = datasets.load("irds:fake/test")
    assert [(d.id, d.title, d.text) for d in ds.corpus] == [("d1", "Title", "first body"), ("d2", "", "second body")]
    assert dict(ds.queries) == {"1": "body"} and ds.qrels["1"] == {"d2": 2}
    with pytest.raises(DatasetNotFoundError, match="ir_datasets knows no dataset 'nope'"):
        datasets.load("irds:nope")
    from rankstack.data import resolve

    assert resolve.is_collection_name("irds:fake/test") and len(resolve.queries("irds:fake/test")) == 1
