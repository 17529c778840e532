import json
import struct

import pytest

import rankstack
from rankstack import BM25, Stage
from rankstack.cli import main
from rankstack.data import datasets
from rankstack.pipeline.config import parse
from rankstack.retrieve.rm3 import RM3


@pytest.fixture(scope="module")
def scifact(tmp_path_factory):
    ds = datasets.load("beir/scifact")
    qids = list(ds.queries)[:40]
    bm25 = BM25.build(ds.corpus, tmp_path_factory.mktemp("idx") / "scifact", progress=False, k=100)
    return bm25, ds.queries.subset(qids), ds.qrels.subset(qids)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_experiment_table_and_report(scifact, tmp_path):
    bm25, queries, qrels = scifact
    rm3 = RM3(bm25)
    exp = rankstack.Experiment({"BM25": bm25, "RM3": rm3, "RRF": (bm25 | rm3).rrf()}, queries, qrels,
                               ["nDCG@10", "R@100"], latency_sample=5)
    table = exp.table()
    assert "BM25 (baseline)" in table and "mean ms" in table and "p95 ms" in table
    ndcg = exp.comparison.result("RM3", "nDCG@10").mean
    assert f"{ndcg:.4f}" in table
    curve = exp.depth_curve(lambda d: bm25 % d, [1, 10, 100], "R@100")
    assert curve[1][0] <= curve[1][1] <= curve[1][2]
    page = exp.report(tmp_path / "report", depth_curves={"BM25": curve})
    assert "data:image/png;base64," in page.read_text()
    for name in ("per_query_differences", "metric_by_depth", "effectiveness_vs_latency"):
        assert png_size(tmp_path / "report" / f"{name}.png") == (800, 450)
    assert json.loads((tmp_path / "report" / "results.json").read_text())["runs"][1]["latency_ms_mean"] > 0


class Counting(Stage):
    """Counts the queries it is asked to process."""
    first_stage = True
    calls = 0

    def __init__(self, inner):
        self.inner = inner

    def transform(self, queries, run=None):
        Counting.calls += len(queries)
        return self.inner(queries, run)

    def config(self):
        return {"inner": self.inner}


def test_cached_rerun_is_identical_without_recomputation(scifact, tmp_path):
    bm25, queries, _ = scifact
    pipeline = Counting(bm25) % 20
    first = pipeline.cached(tmp_path / "cache")(queries)
    calls = Counting.calls
    second = pipeline.cached(tmp_path / "cache")(queries)
    assert Counting.calls == calls  # nothing recomputed
    assert [first.hits(q) for q in first] == [second.hits(q) for q in second]
    reference = pipeline(queries)
    assert [first.hits(q) for q in first] == [reference.hits(q) for q in queries]
    changed = (Counting(bm25) % 5).cached(tmp_path / "cache")(queries)  # only the cut-off changed
    assert Counting.calls == calls + len(queries)  # the uncached reference run above
    assert changed.ids(next(iter(queries))) == first.ids(next(iter(queries)))[:5]


def test_pipelines_round_trip_through_their_repr(scifact):
    bm25, queries, _ = scifact
    pipeline = (bm25 | RM3(bm25, fb_terms=5)).combsum(norm="zscore", weights=[0.3, 0.7]) % 10
    rebuilt = parse(repr(pipeline))
    assert repr(rebuilt) == repr(pipeline)
    a, b = rebuilt(queries), pipeline(queries)
    assert [a.hits(q) for q in queries] == [b.hits(q) for q in queries]


def test_experiment_command(scifact, tmp_path, capsys):
    bm25, queries, qrels = scifact
    queries.write_jsonl(tmp_path / "queries.jsonl")
    qrels.write_trec(tmp_path / "qrels.txt")
    (tmp_path / "exp.json").write_text(json.dumps({
        "queries": "queries.jsonl", "qrels": "qrels.txt", "measures": ["nDCG@10", "R@100"],
        "stages": {"bm25": f"BM25(index={str(bm25.index.path)!r}, k=100)"},
        "pipelines": {"BM25": "bm25", "RM3": "RM3(bm25=bm25)", "fused": "(bm25 | RM3(bm25=bm25)).rrf(k=60)"},
        "baseline": "BM25", "cache": "cache", "report": "report", "latency_sample": 3}))
    assert main(["experiment", str(tmp_path / "exp.json")]) == 0
    out = capsys.readouterr().out
    assert "fused" in out and "report written" in out
    assert (tmp_path / "report" / "index.html").exists()
    (tmp_path / "bad.json").write_text(json.dumps({"queries": "queries.jsonl", "qrels": "qrels.txt",
                                                   "measures": ["nDCG@10"], "pipelines": {"x": "__import__('os')"}}))
    assert main(["experiment", str(tmp_path / "bad.json")]) == 2
    assert "pipeline expression" in capsys.readouterr().err
