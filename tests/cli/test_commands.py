"""The commands on small collections and tiny random models: every index type built and searched by path, options
checked against the index type, resumable encoding, pipelines, fusion and reranking of run files, ArguAna-style
removal of the query's own document, and bad input as one line with exit code 2."""

import json
import socket
import subprocess
import sys

import pytest

from rankstack.cli import main
from rankstack.data.run import Run


def run_cli(capsys, *args):
    """(exit code, stdout, stderr) of one command."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rankstack: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, data_root, tiny):
    """Every index type over the SciFact slice, built through the command line."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RANKSTACK_DATA", str(data_root))
    root = tmp_path_factory.mktemp("indexes")
    mlm = tiny["mlm"]
    try:
        for name, extra in {"bm25": [], "dense": ["--type", "dense", "--encoder", mlm, "--factory", "HNSW32"],
                            "splade": ["--type", "splade", "--encoder", mlm, "--approximate"],
                            "free": ["--type", "inference-free", "--encoder", mlm],
                            "late": ["--type", "late", "--encoder", mlm, "--nbits", "2"]}.items():
            assert main(["index", "beir/scifact", str(root / name), "--no-progress", *map(str, extra)]) == 0
    finally:
        mp.undo()
    return root


def test_every_index_type_is_searched_by_path(data, indexes, capsys, tmp_path):
    from rankstack.cli.indexes import index_kind

    kinds = {"bm25": "bm25", "dense": "dense", "splade": "sparse", "free": "sparse", "late": "late",
             "splade/seismic": "seismic"}
    for name, kind in kinds.items():
        assert index_kind(indexes / name) == kind
        output = tmp_path / f"{name.replace('/', '-')}.trec"
        code, _, err = run_cli(capsys, "search", indexes / name, "--queries", "beir/scifact", "-k", 7, "-o", output)
        assert code == 0, err
        assert "queries/s" in err
        run = Run.read(output)
        assert len(run) == 20 and all(len(run[q].docnos) == 7 for q in run)
        assert {line.split()[-1] for line in output.read_text().splitlines()} == {f"rankstack-{kind}"}
    # The Seismic folder and --algorithm seismic on its learned sparse index are the same search.
    code, _, err = run_cli(capsys, "search", indexes / "splade", "--queries", "beir/scifact", "-k", 7,
                           "--algorithm", "seismic", "-o", tmp_path / "alg.trec")
    assert code == 0, err
    assert Run.read(tmp_path / "alg.trec").to_dict() == Run.read(tmp_path / "splade-seismic.trec").to_dict()


def test_index_reports_documents_per_second_and_shows_progress(data, capsys, tmp_path):
    code, _, err = run_cli(capsys, "index", "beir/scifact", tmp_path / "idx", "--progress")
    assert code == 0, err
    assert "indexed 300 documents in" in err and "documents/s" in err
    assert "docs/s" in err  # the progress bar's rate


def test_search_options_follow_the_index_type(data, indexes, capsys, tmp_path):
    out = tmp_path / "run.trec"
    base = ["search", indexes / "bm25", "--queries", "beir/scifact", "-o", out]
    assert run_cli(capsys, *base)[0] == 0
    default = Run.read(out).to_dict()
    assert run_cli(capsys, *base, "--k1", 1.2, "--b", 0.75)[0] == 0
    other = Run.read(out).to_dict()
    assert other.keys() == default.keys() and other != default  # k1/b per search change the scores
    from rankstack.retrieve.bm25 import BM25

    expected = BM25(indexes / "bm25", k1=1.2, b=0.75).search(data_root_query(data), 5)
    code, shown, _ = run_cli(capsys, "search", indexes / "bm25", "-q", data_root_query(data), "-k", 5, "--k1", 1.2,
                             "--b", 0.75)
    assert [line.split()[-1] for line in shown.splitlines()] == [d for d, _ in expected]
    code, shown, _ = run_cli(capsys, "search", indexes / "bm25", "-q", data_root_query(data), "-k", 5, "--k1", 1.2,
                             "--b", 0.75, "--algorithm", "bmp")  # Block-Max Pruning: the same hits
    assert code == 0 and [line.split()[-1] for line in shown.splitlines()] == [d for d, _ in expected]
    for args, message in [(["--nprobe", 4], "--nprobe does not apply to a BM25 index"),
                          (["--algorithm", "seismic"], "algorithm 'seismic' does not apply to a BM25 index"),
                          (["--ef-search", 8, "--k1", 1.0], "--ef-search does not apply")]:
        code, _, err = run_cli(capsys, *base, *args)
        assert code == 2 and message in one_line_error(err)
    code, _, err = run_cli(capsys, "search", indexes / "dense", "--queries", "beir/scifact", "-o", out,
                           "--algorithm", "bmw")
    assert code == 2 and "takes no --algorithm" in one_line_error(err)
    code, _, err = run_cli(capsys, "search", indexes / "dense", "--queries", "beir/scifact", "-o", out,
                           "--ef-search", 16, "--format", "jsonl")
    assert code == 0 and json.loads(out.read_text().splitlines()[0])["hits"]


def data_root_query(data):
    return "vitamin d and bone density"


def test_show_text_prints_titles_and_texts(data, indexes, capsys):
    code, out, err = run_cli(capsys, "search", indexes / "bm25", "-q", "cells", "-k", 2, "--show-text")
    assert code == 0, err
    from rankstack.retrieve.bm25 import BM25

    bm25 = BM25(indexes / "bm25")
    first = bm25.search("cells", 1)[0][0]
    assert bm25.document(first).title[:40] in out
    code, _, err = run_cli(capsys, "search", indexes / "dense", "-q", "cells", "--show-text")
    assert code == 2 and "pass --corpus" in one_line_error(err)
    code, out, err = run_cli(capsys, "search", indexes / "dense", "-q", "cells", "-k", 1, "--show-text",
                             "--corpus", "beir/scifact")
    assert code == 0 and len(out.splitlines()) >= 2


def test_encode_then_index_from_the_shards(data, tiny, capsys, tmp_path):
    shards = tmp_path / "shards"
    common = ["--type", "dense", "--encoder", tiny["mlm"]]
    code, _, err = run_cli(capsys, "encode", "beir/scifact", shards, "--shard-size", 128, *common)
    assert code == 0 and "encoded 300 documents" in err and "3 shards, 0 of them already complete" in err
    (shards / "shard-000002.npz").unlink()  # as if the run had stopped there
    code, _, err = run_cli(capsys, "encode", "beir/scifact", shards, "--shard-size", 128, *common)
    assert code == 0 and "encoded 44 documents" in err and "2 of them already complete" in err
    code, _, err = run_cli(capsys, "index", "beir/scifact", tmp_path / "idx", "--shards", shards, "--shard-size", 128,
                           *common)
    assert code == 0, err
    from rankstack.retrieve.dense import Dense

    assert len(Dense(tmp_path / "idx").index) == 300
    code, _, err = run_cli(capsys, "encode", "beir/scifact", shards, "--shard-size", 128, "--type", "dense",
                           "--encoder", tiny["other"])
    assert code == 2 and "differs from the one" in one_line_error(err)  # another model never mixes into shards
    code, _, err = run_cli(capsys, "index", "beir/scifact", tmp_path / "idx8", *common, "--device", "cpu", "--dtype",
                           "int8")
    assert code == 0, err
    assert Dense(tmp_path / "idx8").index.encoder_info["dtype"] == "int8"  # the index records the precision


def test_index_flags_of_another_type_are_refused(data, tiny, capsys, tmp_path):
    for args, message in [(["--factory", "HNSW32"], "--factory does not apply to --type bm25"),
                          (["--encoder", tiny["mlm"]], "apply to neural indexes"),
                          (["--type", "dense"], "--type dense needs --encoder"),
                          (["--type", "splade", "--encoder", tiny["mlm"], "--pooling", "cls"],
                           "--pooling applies to dense encoders only"),
                          (["--type", "dense", "--encoder", tiny["mlm"], "--reorder"],
                           "--reorder does not apply to --type dense")]:
        code, _, err = run_cli(capsys, "index", "beir/scifact", tmp_path / "x", *args)
        assert code == 2 and message in one_line_error(err), err
    assert run_cli(capsys, "index", "beir/scifact", tmp_path / "y")[0] == 0
    code, _, err = run_cli(capsys, "index", "beir/scifact", tmp_path / "y")
    assert code == 2 and "pass --overwrite to replace it" in one_line_error(err) and "overwrite=True" not in err
    assert run_cli(capsys, "index", "beir/scifact", tmp_path / "y", "--overwrite")[0] == 0


def test_index_reorder_keeps_the_search_results(data, capsys, tmp_path):
    """`--reorder` renumbers the documents (recorded in the manifest); the run is the same up to tied scores."""
    runs = {}
    for name, extra in (("plain", []), ("reordered", ["--reorder"])):
        assert run_cli(capsys, "index", "beir/scifact", tmp_path / name, *extra)[0] == 0
        assert run_cli(capsys, "search", tmp_path / name, "--queries", "beir/scifact", "-k", 100,
                       "-o", tmp_path / f"{name}.trec")[0] == 0
        runs[name] = Run.read(tmp_path / f"{name}.trec")
    manifest = json.loads((tmp_path / "reordered" / "manifest.json").read_text())
    assert manifest["settings"]["reorder"] is True
    for q in runs["plain"]:
        plain, reordered = runs["plain"].hits(q), runs["reordered"].hits(q)
        assert [s for _, s in plain] == [s for _, s in reordered]
        assert {d for d, s in plain if s > plain[-1][1]} == {d for d, s in reordered if s > plain[-1][1]}


def test_run_fuse_and_rerank(data, indexes, tiny, capsys, tmp_path):
    bm25, dense = str(indexes / "bm25"), str(indexes / "dense")
    for name, index in (("bm25", bm25), ("dense", dense)):
        assert run_cli(capsys, "search", index, "--queries", "beir/scifact", "-o", tmp_path / f"{name}.trec")[0] == 0
    code, _, err = run_cli(capsys, "fuse", tmp_path / "bm25.trec", tmp_path / "dense.trec", "-o", tmp_path / "rrf.trec")
    assert code == 0 and "queries/s" in err
    expression = f"(BM25({bm25!r}) | Dense({dense!r})).rrf()"
    code, _, err = run_cli(capsys, "run", expression, "--queries", "beir/scifact", "-o", tmp_path / "pipe.trec")
    assert code == 0 and "queries/s" in err
    fused, piped = Run.read(tmp_path / "rrf.trec"), Run.read(tmp_path / "pipe.trec")
    for q in fused:  # the same fusion, from files or from stages (ties may break apart differently)
        assert {d: round(s, 5) for d, s in fused.hits(q)} == {d: round(s, 5) for d, s in piped.hits(q)}
    from rankstack.pipeline.fusion import fuse

    runs = [Run.read(tmp_path / "bm25.trec"), Run.read(tmp_path / "dense.trec")]
    code, _, _ = run_cli(capsys, "fuse", *(tmp_path / f"{n}.trec" for n in ("bm25", "dense")), "--method",
                         "interpolation", "--weights", 0.3, 0.7, "--norm", "zscore", "-k", 10, "-o",
                         tmp_path / "w.trec")
    expected = fuse(runs, "combsum", [0.3, 0.7], norm="zscore").cut(10)
    assert code == 0 and Run.read(tmp_path / "w.trec").to_dict().keys() == expected.to_dict().keys()
    assert all(Run.read(tmp_path / "w.trec").ids(q) == expected.ids(q) for q in expected)
    code, _, err = run_cli(capsys, "rerank", tmp_path / "bm25.trec", tiny["ce"], "--queries", "beir/scifact",
                           "--texts", bm25, "--depth", 5, "-o", tmp_path / "ce.jsonl")
    assert code == 0 and "queries/s" in err
    reranked, first = Run.read(tmp_path / "ce.jsonl"), runs[0]
    for q in first:
        assert sorted(reranked.ids(q)[:5]) == sorted(first.ids(q)[:5]) and reranked.ids(q)[5:] == first.ids(q)[5:]
    for dtype in ("bf16", "int8"):  # reduced precision on CPU: the same candidates, reordered among themselves
        code, _, err = run_cli(capsys, "rerank", tmp_path / "bm25.trec", tiny["ce"], "--queries", "beir/scifact",
                               "--texts", bm25, "--depth", 5, "--device", "cpu", "--dtype", dtype, "-o",
                               tmp_path / f"ce-{dtype}.trec")
        assert code == 0, err
        lowered = Run.read(tmp_path / f"ce-{dtype}.trec")
        assert all(sorted(lowered.ids(q)[:5]) == sorted(first.ids(q)[:5]) for q in first)
        assert any(dict(lowered.hits(q)[:5]) != dict(reranked.hits(q)[:5]) for q in first)  # not fp32's scores
    code, _, err = run_cli(capsys, "rerank", tmp_path / "bm25.trec",
                           f"BiEncoder(DenseEncoder({str(tiny['mlm'])!r}), texts, depth=5)", "--queries",
                           "beir/scifact", "--texts", "beir/scifact", "-o", tmp_path / "bi.trec")
    assert code == 0, err
    code, _, err = run_cli(capsys, "run", f"BM25({bm25!r}) % 10", "--queries", "beir/scifact", "-o",
                           tmp_path / "ten.trec", "--format", "jsonl")
    assert code == 0 and all(len(json.loads(line)["hits"]) == 10
                             for line in (tmp_path / "ten.trec").read_text().splitlines())


def test_arguana_style_removal_of_the_query_document(data, capsys, tmp_path):
    """ArguAna's queries are corpus documents: each ranks first for itself; BEIR drops it, and so does search."""
    assert run_cli(capsys, "index", "beir/arguana", tmp_path / "idx")[0] == 0
    kept, removed = tmp_path / "kept.trec", tmp_path / "removed.trec"
    code, _, err = run_cli(capsys, "search", tmp_path / "idx", "--queries", "beir/arguana", "-k", 3, "-o", kept,
                           "--no-remove-query")
    assert code == 0 and "removed" not in err
    assert all(Run.read(kept).ids(q)[0] == q for q in ("a1", "a3", "a5"))  # the query's own document first
    code, _, err = run_cli(capsys, "search", tmp_path / "idx", "--queries", "beir/arguana", "-k", 3, "-o", removed)
    assert code == 0 and "beir/arguana: hits whose id equals the query id are removed" in err
    run, before = Run.read(removed), Run.read(kept)
    for q in ("a1", "a3", "a5"):
        assert q not in run.ids(q) and run.ids(q)[:len(before.ids(q)) - 1] == before.ids(q)[1:]
    # The counter-argument now ranks first; evaluating the collection drops the query's own hit too, as BEIR does.
    code, out, _ = run_cli(capsys, "eval", "beir/arguana", kept, removed, "-m", "RR@10", "--format", "json",
                           "--no-remove-query")
    rr = {r["name"]: r["results"]["RR@10"]["mean"] for r in json.loads(out)["runs"]}
    assert rr["removed"] == 1.0 and rr["kept"] == 0.5
    code, out, err = run_cli(capsys, "eval", "beir/arguana", kept, removed, "-m", "RR@10", "--format", "json")
    rr = {r["name"]: r["results"]["RR@10"]["mean"] for r in json.loads(out)["runs"]}
    assert rr == {"kept": 1.0, "removed": 1.0} and "as BEIR evaluates this collection" in err
    # A queries file of the same queries is not the named collection: nothing removed unless asked.
    code, _, err = run_cli(capsys, "search", tmp_path / "idx", "--queries", data / "arguana" / "queries.jsonl",
                           "-k", 3, "-o", kept)
    assert "removed" not in err and Run.read(kept).ids("a1")[0] == "a1"
    assert run_cli(capsys, "search", tmp_path / "idx", "--queries", data / "arguana" / "queries.jsonl", "-k", 3,
                   "-o", kept, "--remove-query")[0] == 0
    assert Run.read(kept).to_dict() == run.to_dict()
    code, _, err = run_cli(capsys, "run", f"BM25({str(tmp_path / 'idx')!r}) % 3", "--queries", "beir/arguana",
                           "-o", tmp_path / "r.trec")
    assert code == 0 and "removed" in err and all(q not in Run.read(tmp_path / "r.trec").ids(q) for q in ("a1", "a3"))


def test_bad_input_is_one_line_and_exit_code_2(data, indexes, tiny, capsys, tmp_path):
    weird = tmp_path / "weird"
    weird.mkdir()
    (weird / "manifest.json").write_text(json.dumps({"format": "lucene-index", "version": 9}))
    (tmp_path / "q.tsv").write_text("x1\tvitamin\nx2\tbone\n")
    (tmp_path / "other.trec").write_text("x1 Q0 4983 1 2.0 r\nx2 Q0 4983 1 1.0 r\n")
    assert run_cli(capsys, "search", indexes / "bm25", "--queries", "beir/scifact", "-o", tmp_path / "b.trec")[0] == 0
    cases = [
        (["search", weird, "-q", "x"], "index of unknown type 'lucene-index'"),
        (["search", tmp_path / "nowhere", "-q", "x"], "is not an index directory"),
        (["search", indexes / "dense", "-q", "cells", "--encoder", tiny["other"]], "differs from the one"),
        (["search", indexes / "splade", "-q", "cells", "--encoder", tiny["other"]], "differs from the one"),
        (["search", indexes / "late", "-q", "cells", "--encoder", tiny["other"]], "differs from the one"),
        (["run", "(BM25('x') | ", "--queries", "beir/scifact", "-o", tmp_path / "o.trec"], "is not valid"),
        (["run", "__import__('os')", "--queries", "beir/scifact", "-o", tmp_path / "o.trec"],
         "'__import__' is not defined"),
        (["run", f"BM25({str(indexes / 'bm25')!r})", "--queries", "beir/scifact", "--run", tmp_path / "other.trec",
          "-o", tmp_path / "o.trec"], "holds results for none of the 20 queries"),
        (["rerank", tmp_path / "other.trec", tiny["ce"], "--queries", "beir/scifact", "--texts", "beir/scifact",
          "-o", tmp_path / "o.trec"], "a run for other queries"),
        (["fuse", tmp_path / "b.trec", tmp_path / "other.trec", "-o", tmp_path / "o.trec"], "shares no query"),
        (["search", indexes / "bm25", "--queries", "beir/scifact", "-o", tmp_path / "no" / "dir" / "r.trec"],
         "cannot write the file"),
        (["eval", "beir/scifact", tmp_path / "missing.trec"], "file not found"),
        (["search", indexes / "bm25", "--queries", "beir/nope"], "unknown collection"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in one_line_error(err), (args, err)


def test_a_dead_listwise_endpoint_is_an_error(data, indexes, capsys, tmp_path):
    """No server listens: every request fails, so reranking stops with an error instead of keeping the input order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    assert run_cli(capsys, "search", indexes / "bm25", "--queries", "beir/scifact", "-k", 5,
                   "-o", tmp_path / "b.trec")[0] == 0
    expression = (f"Listwise('m', texts, base_url='http://127.0.0.1:{port}/v1', retries=1, backoff=0, window=3, "
                  "stride=2)")
    code, _, err = run_cli(capsys, "rerank", tmp_path / "b.trec", expression, "--queries", "beir/scifact", "--texts",
                           indexes / "bm25", "-o", tmp_path / "l.trec")
    assert code == 2 and "request failed after 2 attempts" in one_line_error(err)
    assert not (tmp_path / "l.trec").exists()


def test_version_and_no_traceback_from_the_console_script(data, tmp_path):
    from rankstack import __version__

    out = subprocess.run([sys.executable, "-m", "rankstack.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"rankstack {__version__}"
    out = subprocess.run([sys.executable, "-m", "rankstack.cli", "run", "BM25(", "--queries", "beir/scifact", "-o",
                          str(tmp_path / "x.trec")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
