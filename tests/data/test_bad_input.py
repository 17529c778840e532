"""Bad or odd input files and values: each a clear InputError naming the file (and line) or the field, or handled."""

import gzip
import json
import random

import numpy as np
import pytest

from rankstack.cli import main
from rankstack.data import Corpus, Document, Qrels, Queries, Run
from rankstack.data.corpus import write_corpus_jsonl
from rankstack.data.qrels import MAX_GRADE, grade
from rankstack.errors import InputError

# --- qrels grades ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["inf", "-inf", "nan", "1e400", "1.5", "99999999999999999999", str(MAX_GRADE + 1),
                                 "0x1", "high"])
def test_qrels_grade_that_is_not_an_integer_names_file_and_line(tmp_path, rel):
    path = tmp_path / "qrels.txt"
    path.write_text(f"1 0 d1 1\n1 0 d2 {rel}\n")
    with pytest.raises(InputError, match=r"qrels\.txt, line 2: relevance .* (not an integer|out of range|not a number)"):
        Qrels.read(path)


def test_qrels_integral_grades_in_any_spelling(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 d1 1.0\n1 0 d2 -1\n1 0 d3 2e0\n1 0 d4 3\n")
    assert dict(Qrels.read(path)) == {"1": {"d1": 1, "d2": -1, "d3": 2, "d4": 3}}
    assert grade(2.0) == 2 and type(grade(2.0)) is int


@pytest.mark.parametrize("rel", [float("inf"), float("nan"), 1.5, 10**30, None, "x", True])
def test_qrels_built_in_python_checks_grades(rel):
    with pytest.raises(InputError, match=r"query 'q': relevance"):
        Qrels({"q": {"d1": 1, "d2": rel}})


def test_eval_command_with_infinite_grade_is_an_error(tmp_path, capsys):
    (tmp_path / "qrels.txt").write_text("1 0 d1 inf\n")
    (tmp_path / "run.trec").write_text("1 Q0 d1 1 2.0 t\n")
    assert main(["eval", str(tmp_path / "qrels.txt"), str(tmp_path / "run.trec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankstack: error:") and "qrels.txt, line 1: relevance 'inf'" in err


def test_evaluate_checks_grades_of_plain_mappings():
    from rankstack.evaluate import evaluate

    with pytest.raises(InputError, match="relevance"):
        evaluate(Run.from_dict({"q": {"d": 1.0}}), {"q": {"d": float("inf")}}, ["AP"])


# --- damaged files: every reader ------------------------------------------------------------------------------

def _readers():
    return {
        "queries.tsv": Queries.read, "queries.txt": Queries.read, "queries.jsonl": Queries.read,
        "topics.txt": lambda p: Queries.read(p, "trec"),
        "corpus.jsonl": lambda p: list(Corpus(p)), "corpus.tsv": lambda p: list(Corpus(p)),
        "qrels.txt": Qrels.read, "run.trec": Run.read, "run.jsonl": Run.read,
    }


GOOD = {
    "queries.tsv": "1\thello\n", "queries.txt": "1\thello\n", "queries.jsonl": '{"_id": "1", "text": "hello"}\n',
    "topics.txt": "<top>\n<num> 1\n<title> hello\n</top>\n",
    "corpus.jsonl": '{"_id": "d1", "text": "hello"}\n', "corpus.tsv": "d1\thello\n",
    "qrels.txt": "1 0 d1 1\n", "run.trec": "1 Q0 d1 1 2.0 t\n", "run.jsonl": '{"qid": "1", "hits": [["d1", 2.0]]}\n',
}


def _damaged(kind: str, text: str) -> tuple[str, bytes]:
    """(suffix, bytes) of a file damaged in one of several ways."""
    rng = random.Random(0)
    data = (text + "".join(rng.choice(" \t\n") for _ in range(20000)) + "\n").encode()  # blank lines after it
    if kind == "latin-1":
        return "", text.replace("1", "\xe9", 1).encode("latin-1")
    packed = gzip.compress(data)
    if kind == "truncated-gzip":
        return ".gz", packed[:len(packed) // 2]
    if kind == "not-gzip":
        return ".gz", data
    if kind == "bad-crc":
        return ".gz", packed[:-8] + bytes(b ^ 0xFF for b in packed[-8:-4]) + packed[-4:]
    if kind == "bad-deflate":
        return ".gz", packed[:10] + b"\xff" * 16 + packed[26:]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["latin-1", "truncated-gzip", "not-gzip", "bad-crc", "bad-deflate"])
@pytest.mark.parametrize("name", list(GOOD))
def test_damaged_files_are_input_errors_naming_the_file(tmp_path, name, kind):
    suffix, data = _damaged(kind, GOOD[name])
    path = tmp_path / (name + suffix)
    path.write_bytes(data)
    with pytest.raises(InputError, match=rf"{path.name}: cannot be read as UTF-8 text"):
        _readers()[name](path)


@pytest.mark.parametrize("name", list(GOOD))
def test_byte_order_mark_is_skipped(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + GOOD[name].encode())
    result = _readers()[name](path)
    first = next(iter(result))
    assert "\ufeff" not in (first.id if isinstance(first, Document) else first)


def test_unreadable_file_is_an_input_error(tmp_path, monkeypatch):
    from rankstack.data import files

    path = tmp_path / "q.tsv"
    path.write_text("1\thello\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "open", refuse, raising=False)
    with pytest.raises(InputError, match=r"q\.tsv: cannot read the file \(permission denied\)"):
        Queries.read(path)


def test_directory_given_as_a_file(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        Queries.read(tmp_path)
    with pytest.raises(InputError, match="is a directory"):
        Run.from_dict({"q": {"d": 1.0}}).write_trec(tmp_path)


# --- writing -------------------------------------------------------------------------------------------------

RUN = Run.from_dict({"q1": {"d1": 2.0, "d2": 1.0}})


def _writers():
    return {
        "run.trec": RUN.write_trec, "run.jsonl": RUN.write_jsonl,
        "queries.jsonl": Queries({"1": "a"}).write_jsonl, "queries.tsv": Queries({"1": "a"}).write_tsv,
        "qrels.txt": Qrels({"1": {"d": 1}}).write_trec,
        "corpus.jsonl.gz": lambda p: write_corpus_jsonl([Document("d", "t")], p),
    }


@pytest.mark.parametrize("name", list(_writers()))
def test_writing_into_a_missing_folder_says_so(tmp_path, name):
    path = tmp_path / "missing" / "dir" / name
    with pytest.raises(InputError, match=r"cannot write the file: the folder '.*missing/dir' does not exist"):
        _writers()[name](path)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        _writers()[name](tmp_path / "file" / name)


def test_writing_without_permission_is_an_input_error(tmp_path, monkeypatch):
    from rankstack.data import files

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "open", refuse, raising=False)
    with pytest.raises(InputError, match=r"run\.trec: cannot write the file \(permission denied\)"):
        RUN.write_trec(tmp_path / "run.trec")


def test_search_command_writing_into_a_missing_folder(tmp_path, capsys):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "cats and dogs"}\n')
    (tmp_path / "q.tsv").write_text("1\tcats\n")
    assert main(["index", str(tmp_path / "corpus.jsonl"), str(tmp_path / "idx")]) == 0
    capsys.readouterr()  # the index command's report
    assert main(["search", str(tmp_path / "idx"), "--queries", str(tmp_path / "q.tsv"),
                 "-o", str(tmp_path / "missing" / "run.trec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankstack: error:") and "does not exist" in err and "Traceback" not in err


def test_run_ids_a_trec_file_cannot_hold(tmp_path):
    with pytest.raises(InputError, match=r"document id 'a b' \(query 'q'\) is empty or holds whitespace"):
        Run.from_dict({"q": {"ok": 2.0, "a b": 1.0}}).write_trec(tmp_path / "r.trec")
    with pytest.raises(InputError, match=r"document id '' "):
        Run.from_dict({"q": {"": 1.0}}).write_trec(tmp_path / "r.trec")
    with pytest.raises(InputError, match=r"query id 'q 1' is empty or holds whitespace"):
        Run.from_dict({"q 1": {"d": 1.0}}).write_trec(tmp_path / "r.trec")
    Run.from_dict({"q 1": {"a b": 1.0}}).write_jsonl(tmp_path / "r.jsonl")  # JSONL holds any id
    assert Run.read(tmp_path / "r.jsonl").ids("q 1") == ["a b"]


def test_lone_surrogate_in_a_run_is_an_input_error_when_written(tmp_path):
    with pytest.raises(InputError, match=r"r\.jsonl: cannot write .* lone surrogate"):
        Run.from_dict({"q": {"d\ud800": 1.0}}).write_jsonl(tmp_path / "r.jsonl")


# --- documents and queries built in Python or read from files ----------------------------------------------------

@pytest.mark.parametrize("args, field", [
    (("d", None), "document text must be a string, got NoneType"),
    ((1, "text"), "document id must be a string, got int"),
    (("d", "text", 3), "document title must be a string, got int"),
    (("d", b"bytes"), "document text must be a string, got bytes"),
    (("d\ud800", "text"), "document id 'd\\\\ud800' holds a lone surrogate"),
    (("d", "caf\xe9 \udc80"), "document text .* holds a lone surrogate"),
    (("d", "text", "t\udfff"), "document title .* holds a lone surrogate"),
])
def test_bad_document_fields_name_the_field(args, field):
    with pytest.raises(InputError, match=field):
        Document(*args)


def test_document_keywords_and_defaults():
    assert Document(id="d", text="caf\xe9") == ("d", "caf\xe9", "")
    assert Document("d", "t", None).title == ""
    assert Document("d", "t", "T").contents == "T t"


def test_bad_document_never_reaches_an_index(tmp_path):
    from rankstack import BM25

    with pytest.raises(InputError, match="document text"):
        BM25.build([Document("a", "fine"), Document("b", "bad \ud800")], tmp_path / "idx", progress=False)


@pytest.mark.parametrize("items, message", [
    ({"q\ud800": "text"}, "query id 'q\\\\ud800' holds a lone surrogate"),
    ({"q": "text \udc00"}, "text of query 'q' .* holds a lone surrogate"),
    ({"q": None}, "text of query 'q' must be a string, got NoneType"),
    ({"q": 3}, "text of query 'q' must be a string, got int"),
    ({None: "text"}, "query id must be a string, got NoneType"),
    ({1.5: "text"}, "query id must be a string, got float"),
    ({"": "text"}, "query id is empty"),
])
def test_bad_queries_built_in_python_name_the_field(items, message):
    with pytest.raises(InputError, match=message):
        Queries(items)


def test_query_ids_that_are_integers_become_strings():
    assert list(Queries({1: "a", "2": "b", np.int64(3): "c"})) == ["1", "2", "3"]


def test_bad_query_in_a_file_names_file_and_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "2", "text": ["a", "list"]}\n')
    with pytest.raises(InputError, match=r"q\.jsonl, line 2: field 'text' must be a string"):
        Queries.read(path)
    (tmp_path / "q.tsv").write_text("1\ta\n\tno id\n")
    with pytest.raises(InputError, match=r"q\.tsv, line 2: query id is empty"):
        Queries.read(tmp_path / "q.tsv")


# --- files of one kind given as another ----------------------------------------------------------------------

def test_run_file_given_as_qrels_is_refused(tmp_path):
    path = tmp_path / "bm25.trec"
    path.write_text("1 Q0 d1 1 12.5 bm25\n1 Q0 d2 2 11.0 bm25\n")
    with pytest.raises(InputError, match=r"bm25\.trec, line 1: this is a line of a TREC run file"):
        Qrels.read(path)
    path.write_text("1 0 d1 1 extra\n")
    with pytest.raises(InputError, match="line 1: expected 4 columns .* found 5"):
        Qrels.read(path)


def test_qrels_file_given_as_a_run_is_refused(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 d1 1\n")
    with pytest.raises(InputError, match=r"qrels\.txt, line 1: this is a line of a qrels file"):
        Run.read(path)


def test_nan_score_in_a_run_is_refused(tmp_path):
    (tmp_path / "r.trec").write_text("1 Q0 d1 1 nan t\n")
    with pytest.raises(InputError, match="line 1: score 'nan' is not a number"):
        Run.read(tmp_path / "r.trec")


# --- headers, separators, repeats ----------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["qid\tquery", "query_id\ttext", "id\ttext", "_id\tquery", "QID\tQuery",
                                    "query-id\tquery"])
def test_tsv_queries_header_is_skipped(tmp_path, header):
    path = tmp_path / "q.tsv"
    path.write_text(f"{header}\n1\twhat is bm25\n2\tdense retrieval\n")
    assert dict(Queries.read(path)) == {"1": "what is bm25", "2": "dense retrieval"}


@pytest.mark.parametrize("first", ["id\tgenerics in java", "query\ttext search", "qid\t7", "1\tid text"])
def test_tsv_queries_first_query_that_is_not_a_header_is_kept(tmp_path, first):
    path = tmp_path / "q.tsv"
    path.write_text(f"{first}\n2\tdense retrieval\n")
    qid, text = first.split("\t")
    assert dict(Queries.read(path)) == {qid: text, "2": "dense retrieval"}


def test_qrels_header_is_skipped_only_when_it_is_one(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    assert dict(Qrels.read(path)) == {"q": {"d": 1}}
    path.write_text("query\tQ0\td\t1\n")  # a query named "query": a judgment, not a header
    assert dict(Qrels.read(path)) == {"query": {"d": 1}}


def test_corpus_tsv_line_without_a_tab_names_the_line(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("d1\tfirst text\nd2 second text split on spaces\n")
    with pytest.raises(InputError, match=r"c\.tsv, line 2: no tab in this line"):
        list(Corpus(path))


def test_queries_tsv_may_separate_id_and_text_by_spaces(tmp_path):
    (tmp_path / "q.txt").write_text("1 what is bm25\n")
    assert dict(Queries.read(tmp_path / "q.txt")) == {"1": "what is bm25"}


def test_jsonl_run_with_a_repeated_query_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in [
        {"qid": "1", "hits": [["a", 2.0]]}, {"qid": "2", "hits": [["b", 1.0]]}, {"qid": "1", "hits": [["c", 3.0]]}]))
    with pytest.raises(InputError, match=r"r\.jsonl, line 3: query '1' is on line 1 already"):
        Run.read(path)
