"""Tied scores are reported only where the order of the tied documents changes a measure value."""

import warnings

import pytest

from rankstack.cli import main
from rankstack.data import Qrels, Run
from rankstack.evaluate import compare, evaluate


def _tie_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "tied scores" in str(w.message)]


def _evaluate(run, qrels, measures):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(run, qrels, measures)
    return result, _tie_warnings(caught)


QRELS = Qrels({"q1": {"rel": 1}, "q2": {"rel": 2, "low": 1}, "q3": {"rel": 1}})


def test_tie_between_relevant_and_unjudged_at_the_top_warns_once_with_the_count():
    # In the run, "rel" comes first among the tied (from_dict keeps ties in insertion order); trec_eval orders
    # ties by descending doc id, so "x" ("x" > "rel") comes first when evaluated.
    run = Run.from_dict({"q1": {"rel": 2.0, "x": 2.0, "y": 1.0},
                         "q2": {"rel": 3.0, "low": 3.0},  # grades 2 and 1: "rel" > "low", same order both ways
                         "q3": {"rel": 5.0, "zz": 5.0}}, name="tied")
    result, warned = _evaluate(run, QRELS, ["RR"])
    assert result.per_query["RR"] == {"q1": 0.5, "q2": 1.0, "q3": 0.5}  # the values trec_eval gives
    assert len(warned) == 1
    assert "run 'tied': on 2 of 3 evaluated queries" in warned[0] and "RR" in warned[0]
    assert "tied scores change RR on 2 queries" in result.notes


def test_tie_that_straddles_a_cutoff_warns():
    run = Run.from_dict({"q1": {"a": 3.0, "rel": 2.0, "z": 2.0}})  # evaluated order: a, z | rel
    _, warned = _evaluate(run, QRELS.subset(["q1"]), ["P@2"])
    assert len(warned) == 1 and "P@2" in warned[0]


@pytest.mark.parametrize("case, hits, measures", [
    ("ties among unjudged documents only", {"rel": 3.0, "x": 2.0, "y": 2.0, "z": 2.0}, ["RR", "nDCG@10", "AP"]),
    ("relevant tie beyond every cut-off", {"a": 5.0, "b": 4.0, "rel": 1.0, "z": 1.0}, ["nDCG@2", "P@1"]),
    ("relevant tie inside a set cut-off", {"rel": 1.0, "z": 1.0, "b": 0.5}, ["R@2", "P@2"]),
    ("tie order already trec_eval's", {"z": 2.0, "rel": 2.0}, ["RR", "AP"]),
])
def test_ties_that_change_no_value_do_not_warn(case, hits, measures):
    _, warned = _evaluate(Run.from_dict({"q1": hits}), QRELS.subset(["q1"]), measures)
    assert warned == [], case


def test_compare_warns_once_per_run():
    tied = Run.from_dict({"q1": {"rel": 2.0, "x": 2.0}}, name="tied")
    clean = Run.from_dict({"q1": {"rel": 2.0, "x": 1.0}}, name="clean")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare([clean, tied, tied], QRELS.subset(["q1"]), ["RR"])
    assert [w.split(":")[0] for w in _tie_warnings(caught)] == ["run 'tied'", "run 'tied'"]


def test_scifact_bm25_run_written_by_rankstack_does_not_warn(tmp_path, capsys):
    """The run of `rankstack index beir/scifact` + `rankstack search` has ties in most queries (BM25 scores of
    equal length codes), but none between documents of different relevance where nDCG@10 or R@100 read them."""
    index, run = str(tmp_path / "scifact"), str(tmp_path / "bm25.trec")
    assert main(["index", "beir/scifact", index]) == 0
    assert main(["search", index, "--queries", "beir/scifact", "-o", run]) == 0
    ties = Run.read(run)
    assert sum(bool((ties[q].scores[1:] == ties[q].scores[:-1]).any()) for q in ties) > 250  # ties are there
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        assert main(["eval", "beir/scifact", run]) == 0  # nDCG@10 and R@100
    assert _tie_warnings(caught) == [] and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("output_format, warns", [("table", False), ("json", False), ("csv", True)])
def test_command_line_says_a_tie_once(tmp_path, capsys, output_format, warns):
    """The table and JSON carry the tie note, so the command does not warn as well; CSV has no notes: it warns."""
    qrels, run = tmp_path / "qrels.txt", tmp_path / "run.trec"
    qrels.write_text("q1 0 rel 1\n")
    Run.from_dict({"q1": {"rel": 2.0, "x": 2.0}}, name="tied").write_trec(run)
    with warnings.catch_warnings(record=True) as caught:
        assert main(["eval", str(qrels), str(run), "-m", "RR", "--format", output_format]) == 0
    out = capsys.readouterr()
    assert ("tied scores change RR on 1 queries" in out.out) == (not warns)
    assert len(_tie_warnings(caught)) == int(warns)
