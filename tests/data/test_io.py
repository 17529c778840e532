
import warnings

import numpy as np
import pytest

from rankstack.data import Corpus, Document, Qrels, Queries, Run
from rankstack.data.corpus import write_corpus_jsonl
from rankstack.errors import InputError

DOCS = [Document("d1", "first text", "Title one"), Document("d2", "second ünïcode text"), Document("d3", "x\ty")]


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_corpus_jsonl_round_trip(tmp_path, name):
    write_corpus_jsonl(DOCS, tmp_path / name)
    corpus = Corpus(tmp_path / name)
    assert list(corpus) == DOCS
    assert list(corpus) == DOCS  # re-iterable, streamed from disk each time
    assert DOCS[0].contents == "Title one first text"


def test_corpus_tsv(tmp_path):
    (tmp_path / "c.tsv").write_text("a\tonly text\nb\tTitle\tbody\n")
    assert list(Corpus(tmp_path / "c.tsv")) == [Document("a", "only text"), Document("b", "body", "Title")]


def test_corpus_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": \n')
    with pytest.raises(InputError, match=r"c\.jsonl, line 2: malformed JSON"):
        list(Corpus(path))
    path.write_text('{"_id": "1"}\n')
    with pytest.raises(InputError, match=r"line 1: missing field 'text'"):
        list(Corpus(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(Corpus(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="file not found"):
        Qrels.read(tmp_path / "nope.txt")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "c.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="cannot be read"):
        list(Corpus(tmp_path / "c.jsonl.gz"))


@pytest.mark.parametrize("fmt", ["jsonl", "tsv"])
def test_queries_round_trip(tmp_path, fmt):
    queries = Queries({"1": "what is bm25", "2": "dense retrieval"})
    path = tmp_path / f"q.{fmt}"
    getattr(queries, f"write_{fmt}")(path)
    assert dict(Queries.read(path)) == dict(queries)
    assert list(Queries.read(path)) == ["1", "2"]


def test_trec_topics(tmp_path):
    path = tmp_path / "topics.txt"
    path.write_text("<top>\n<num> Number: 301\n<title> International Organized Crime\n<desc> Description:\n"
                    "Identify...\n</top>\n<top>\n<num> Number: 302\n<title>Poliomyelitis and Post-Polio\n"
                    "<desc> x\n</top>\n")
    assert dict(Queries.read(path)) == {"301": "International Organized Crime", "302": "Poliomyelitis and Post-Polio"}


def test_queries_errors(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(InputError, match="line 2: duplicate query id '1'"):
        Queries.read(path)
    path.write_text('{"_id": "1", "text": "  "}\n')
    with pytest.warns(UserWarning, match="line 1: query '1' is empty"):
        assert Queries.read(path)["1"].strip() == ""


def test_qrels_trec_and_beir(tmp_path):
    (tmp_path / "a.txt").write_text("1 0 d1 2\n1 0 d2 0\n2 Q0 d3 1\n")
    (tmp_path / "b.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n2\td3\t1\n")
    a, b = Qrels.read(tmp_path / "a.txt"), Qrels.read(tmp_path / "b.tsv")
    assert dict(a) == dict(b) == {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}}
    a.write_trec(tmp_path / "c.txt")
    assert dict(Qrels.read(tmp_path / "c.txt")) == dict(a)


def test_qrels_errors(tmp_path):
    (tmp_path / "q.txt").write_text("1 0 d1 high\n")
    with pytest.raises(InputError, match="line 1: relevance 'high' is not a number"):
        Qrels.read(tmp_path / "q.txt")
    (tmp_path / "q.txt").write_text("1 0 d1 1\n1 0 d1 2\n")
    with pytest.raises(InputError, match="line 2: document 'd1' judged twice"):
        Qrels.read(tmp_path / "q.txt")


def test_run_is_columnar_and_sorted():
    run = Run.from_dict({"q1": {"a": 1.0, "b": 3.0, "c": 2.0}, "q2": {"c": 0.5}})
    hits = run["q1"]
    assert hits.docnos.dtype == np.int32 and hits.scores.dtype == np.float32
    assert run.ids("q1") == ["b", "c", "a"]
    assert run.cut(2).ids("q1") == ["b", "c"]
    assert run.hits("q2") == [("c", 0.5)]
    assert run.to_dict() == {"q1": {"b": 3.0, "c": 2.0, "a": 1.0}, "q2": {"c": 0.5}}


@pytest.mark.parametrize("name", ["run.trec", "run.jsonl", "run.trec.gz"])
def test_run_round_trip(tmp_path, name):
    run = Run.from_dict({"q1": {"a": 1.5, "b": 3.25}, "q2": {"c": 0.5, "a": 0.25}}, name="mine")
    (run.write_jsonl if ".jsonl" in name else run.write_trec)(tmp_path / name)
    back = Run.read(tmp_path / name)
    assert back.to_dict() == run.to_dict()
    assert [back.ids(q) for q in back] == [run.ids(q) for q in run]


def test_run_with_ties_keeps_file_order_without_warning(tmp_path):
    """Ties are reported at evaluation, where they can change a value (tests/evaluate/test_ties.py)."""
    path = tmp_path / "r.trec"
    path.write_text("1 Q0 z 1 2.0 t\n1 Q0 a 2 2.0 t\n1 Q0 m 3 1.0 t\n1 Q0 b 5 1.0 t\n1 Q0 c 4 1.0 t\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = Run.read(path)
    assert run.ids("1") == ["z", "a", "m", "c", "b"]


def test_run_errors(tmp_path):
    path = tmp_path / "r.trec"
    path.write_text("1 Q0 a 1 2.0 t\n1 Q0 a 2 1.0 t\n")
    with pytest.raises(InputError, match="line 2: document 'a' appears twice"):
        Run.read(path)
    path.write_text("1 Q0 a 1 2.0\n")
    with pytest.raises(InputError, match="line 1: expected 6 columns"):
        Run.read(path)
    path.write_text("1 Q0 a one 2.0 t\n")
    with pytest.raises(InputError, match="line 1: rank 'one' or score"):
        Run.read(path)
    path.write_text("")
    with pytest.raises(InputError, match="empty run"):
        Run.read(path)
