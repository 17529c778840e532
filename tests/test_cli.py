import json
import pytest

from rankstack.cli import main

CORPUS = "".join(json.dumps(d) + "\n" for d in [
    {"_id": "d1", "title": "Cats", "text": "the cat sat on the mat"},
    {"_id": "d2", "title": "", "text": "dogs chase cats in the park"},
    {"_id": "d3", "title": "Finance", "text": "stock markets fell sharply"},
])


@pytest.fixture
def files(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(CORPUS)
    (tmp_path / "queries.tsv").write_text("q1\tcat\nq2\tstock markets\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq1 0 d2 1\nq2 0 d3 2\n")
    return tmp_path


def test_index_search_eval(files, capsys):
    assert main(["index", str(files / "corpus.jsonl"), str(files / "idx")]) == 0
    assert "indexed 3 documents" in capsys.readouterr().err

    assert main(["search", str(files / "idx"), "--query", "cats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines] == ["d1", "d2"]

    run = files / "run.trec"
    assert main(["search", str(files / "idx"), "--queries", str(files / "queries.tsv"), "-o", str(run)]) == 0
    rows = [line.split() for line in run.read_text().splitlines()]
    assert [r[2] for r in rows if r[0] == "q2"] == ["d3"]

    assert main(["eval", str(files / "qrels.txt"), str(run), str(run), "-m", "nDCG@10", "-m", "RR",
                 "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "nDCG@10" in json.dumps(result) and "RR" in json.dumps(result)

    assert main(["eval", str(files / "qrels.txt"), str(run)]) == 0
    table = capsys.readouterr().out
    assert "nDCG@10" in table and "R@100" in table and "1.0000" in table


def test_errors_are_one_line(files, capsys):
    bad = files / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": oops}\n')
    assert main(["index", str(bad), str(files / "idx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankstack: error:") and "bad.jsonl, line 2: malformed JSON" in err
    assert main(["search", str(files / "nowhere"), "-q", "x"]) == 2
    assert "not an index directory" in capsys.readouterr().err
    main(["index", str(files / "corpus.jsonl"), str(files / "idx")])
    assert main(["search", str(files / "idx"), "-q", " "]) == 2
    assert "empty query" in capsys.readouterr().err
    assert main(["eval", str(files / "qrels.txt"), str(files / "missing.trec")]) == 2
    assert "file not found" in capsys.readouterr().err
