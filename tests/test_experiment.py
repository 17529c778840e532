import json
import struct

import numpy as np
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


def write_config(tmp_path, scifact, **changes):
    bm25, queries, qrels = scifact
    queries.write_jsonl(tmp_path / "queries.jsonl")
    qrels.write_trec(tmp_path / "qrels.txt")
    config = {"queries": "queries.jsonl", "qrels": "qrels.txt", "measures": ["nDCG@10"],
              "stages": {"bm25": f"BM25(index={str(bm25.index.path)!r}, k=100)"},
              "pipelines": {"BM25": "bm25", "RM3": "RM3(bm25=bm25)"}, "latency_sample": 2}
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (tmp_path / "exp.json").write_text(json.dumps(config))
    return tmp_path / "exp.json"


def test_experiment_config_is_checked_before_any_work(scifact, tmp_path, capsys, monkeypatch):
    """Misspelled keys, a bad measure, an unknown baseline, a report without matplotlib: one-line errors, and no
    index built, nothing run."""
    import importlib.util

    indexes = {"new-index": "corpus.jsonl"}
    cases = [({"pipeline": {"x": "bm25"}}, "unknown key 'pipeline'; did you mean 'pipelines'?"),
             ({"measures": ["nDCG@x"]}, "invalid measure 'nDCG@x'"),
             ({"baseline": "BM52"}, "baseline 'BM52' is not one of the pipelines ('BM25', 'RM3')"),
             ({"latency_sample": "5"}, "'latency_sample' must be an integer, got \"5\""),
             ({"pipelines": {}}, "'pipelines' is empty")]
    for change, message in cases:
        path = write_config(tmp_path, scifact, indexes=indexes, **change)
        assert main(["experiment", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    path = write_config(tmp_path, scifact, indexes=indexes, report="report")
    assert main(["experiment", str(path)]) == 2
    assert "'report' needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "new-index").exists() and not (tmp_path / "report").exists()


def test_cached_experiment_says_latencies_time_cache_hits_and_reports(scifact, tmp_path, capsys):
    path = write_config(tmp_path, scifact, cache="cache", report="report", baseline="RM3")
    assert main(["experiment", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: latencies time cache hits" in out and "RM3 (baseline)" in out
    assert "latencies time cache hits" in (tmp_path / "report" / "index.html").read_text()


def test_report_with_zero_or_missing_latencies(scifact, tmp_path):
    """Cached stages can take no measurable time, and latency_sample=0 times nothing: the report is still drawn
    (a log-scaled latency axis once crashed on all-zero latencies, after all the work was done)."""
    bm25, queries, qrels = scifact
    exp = rankstack.Experiment({"BM25": bm25, "top10": bm25 % 10}, queries, qrels, ["nDCG@10"], latency_sample=0)
    exp.latencies = [np.zeros(5), np.zeros(5)]
    page = exp.report(tmp_path / "zero", depth_curves={"BM25": ([0, 10, 100], [0.0, 0.5, 0.6])})
    assert page.exists() and png_size(tmp_path / "zero" / "effectiveness_vs_latency.png") == (800, 450)
    exp.latencies = [np.zeros(0), np.array([0.5, 0.7])]
    assert exp.report(tmp_path / "mixed").exists()
