import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rankstack.data.qrels import Qrels
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.evaluate import Comparison, Evaluation, compare, evaluate, parse_measures
from rankstack.evaluate.measures import parse_measure
from rankstack.evaluate.report import MARKER
from rankstack.evaluate.significance import adjust_pvalues, paired_pvalue
from tests.conftest import SHARED_DATA

DL19 = SHARED_DATA / "trec-dl-2019-passage"

# --- a toy example, computed by hand ---------------------------------------------------------------

TOY_QRELS = Qrels({"q1": {"d1": 2, "d2": 0, "d3": 1, "d4": 1}, "q2": {"d5": 1, "d6": 2}})
# relevance down the ranking: q1 -> 0, 2, 1, 0 (d4 not retrieved); q2 -> 0, 0, 2 (d5 not retrieved)
TOY_RUN = Run.from_dict({"q1": {"d2": 3.0, "d1": 2.0, "d3": 1.0, "d7": 0.5},
                         "q2": {"d8": 2.0, "d9": 1.5, "d6": 1.0}}, name="toy")


def dcg(gains):
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_toy_example_matches_hand_computation():
    expected = {
        "nDCG@3": {"q1": dcg([0, 2, 1]) / dcg([2, 1, 1]), "q2": dcg([0, 0, 2]) / dcg([2, 1])},
        "RR": {"q1": 1 / 2, "q2": 1 / 3},
        "P@2": {"q1": 1 / 2, "q2": 0.0},
        "AP": {"q1": (1 / 2 + 2 / 3) / 3, "q2": (1 / 3) / 2},
        "AP(rel=2)": {"q1": 1 / 2, "q2": 1 / 3},
        "R@3": {"q1": 2 / 3, "q2": 1 / 2},
    }
    result = evaluate(TOY_RUN, TOY_QRELS, list(expected))
    assert isinstance(result, Evaluation)
    assert result.name == "toy" and result.num_queries == 2 and result.notes == []
    assert [str(m) for m in result.measures] == list(expected)
    for measure, values in expected.items():
        assert result.per_query[measure] == pytest.approx(values, abs=1e-12)
        assert result.aggregate[measure] == pytest.approx(sum(values.values()) / 2, abs=1e-12)
    assert result.value("MAP") == result.aggregate["AP"]
    assert result.value("nDCG@3", "q2") == pytest.approx(0.38010, abs=1e-5)


# --- measure parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("nDCG@10", "nDCG@10"), ("ndcg@10", "nDCG@10"), ("MRR@10", "RR@10"), ("mrr@10", "RR@10"),
    ("MAP", "AP"), ("map", "AP"), ("Recall@100", "R@100"), ("R@100", "R@100"), ("P@10", "P@10"),
    ("R(rel=2)@1000", "R(rel=2)@1000"), ("R@100 rel>=2", "R(rel=2)@100"), ("MAP rel>=2", "AP(rel=2)"),
    ("  RR@10  ", "RR@10"),
])
def test_parse_measures_aliases(spec, expected):
    assert [str(m) for m in parse_measures([spec])] == [expected]


@pytest.mark.parametrize("spec, expected", [
    ("ndcg_cut.10", "nDCG@10"), ("ndcg_cut_10", "nDCG@10"), ("recall_100", "R@100"), ("recall.100", "R@100"),
    ("P_10", "P@10"), ("P.10", "P@10"), ("map", "AP"), ("recip_rank", "RR"), ("map_cut_100", "AP@100"),
    ("ndcg", "nDCG"), ("success.10", "Success@10"), ("Rprec", "Rprec"), ("bpref", "Bpref"),
    ("recall_1000 rel>=2", "R(rel=2)@1000"),
])
def test_trec_eval_measure_names(spec, expected):
    assert [str(m) for m in parse_measures(spec)] == [expected]
    assert str(parse_measure(spec)) == expected


def test_trec_eval_names_with_several_cutoffs_expand_in_parse_measures_only():
    assert [str(m) for m in parse_measures(["ndcg_cut.5,10", "P.10"])] == ["nDCG@5", "nDCG@10", "P@10"]
    assert [str(m) for m in parse_measures("P")][:2] == ["P@5", "P@10"]  # trec_eval -m P: every cut-off
    with pytest.raises(InputError, match="'ndcg_cut.5,10' names 2 measures"):
        parse_measure("ndcg_cut.5,10")


def test_trec_eval_names_give_trec_eval_values():
    result = evaluate(TOY_RUN, TOY_QRELS, ["ndcg_cut.3", "recip_rank", "P_2", "map", "recall.3"])
    assert result.aggregate == evaluate(TOY_RUN, TOY_QRELS, ["nDCG@3", "RR", "P@2", "AP", "R@3"]).aggregate


def test_modules_depend_one_way():
    """The evaluate modules import each other (at the top or inside functions; TYPE_CHECKING imports aside)
    without a circle."""
    import ast

    import rankstack.evaluate

    folder = Path(rankstack.evaluate.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
        graph[path.stem] = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and id(node) not in typing_only
                            and (node.module or "").startswith("rankstack.evaluate.")}
    assert graph["significance"] and graph["evaluation"]  # the walk found imports

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []


def test_parse_measures_keeps_order_and_drops_duplicates():
    import ir_measures

    measures = parse_measures(["AP", ir_measures.nDCG @ 10, "MAP", "nDCG@10"])
    assert [str(m) for m in measures] == ["AP", "nDCG@10"]


@pytest.mark.parametrize("spec", ["foo@10", "nDCG@ten", "nDCG@10 rel>=2", "nDCG(rel=2)@10", "R(rel=1)@10 rel>=2",
                                  'nDCG(dcg="bogus")@10', "", "ndcg_cut.10 rel>=2", "relstring", "ndcg_cut.x"])
def test_unknown_measure_is_an_input_error(spec):
    with pytest.raises(InputError) as error:
        parse_measures(["nDCG@10", spec])
    assert repr(spec) in str(error.value) and "nDCG@10" in str(error.value).split("examples")[-1]


def test_no_measures_is_an_input_error():
    with pytest.raises(InputError):
        parse_measures([])


# --- query sets ------------------------------------------------------------------------------------

def test_missing_queries_are_skipped_with_a_warning():
    run = Run.from_dict({"q1": TOY_RUN.to_dict()["q1"]}, name="partial")
    with pytest.warns(UserWarning, match=r"1 of 2 judged queries \(q2\)"):
        result = evaluate(run, TOY_QRELS, ["RR"])
    assert result.per_query["RR"] == {"q1": 0.5}
    assert result.num_queries == 1 and result.aggregate["RR"] == 0.5
    assert any("skipped" in note for note in result.notes)


def test_complete_counts_missing_queries_as_zero():
    run = Run.from_dict({"q1": TOY_RUN.to_dict()["q1"], "q2": {}}, name="partial")  # no hits = missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate(run, TOY_QRELS, ["RR", "nDCG@3"], complete=True)
    assert result.per_query["RR"] == {"q1": 0.5, "q2": 0.0}
    assert result.per_query["nDCG@3"]["q2"] == 0.0
    assert result.num_queries == 2 and result.aggregate["RR"] == 0.25
    assert any("counted as 0" in note for note in result.notes)


def test_run_only_and_unjudged_queries_are_ignored():
    run = Run.from_dict({**TOY_RUN.to_dict(), "q3": {"d1": 1.0}, "q4": {"d2": 1.0}}, name="extra")
    qrels = Qrels({**TOY_QRELS, "q4": {}})  # a query without any judgment is not evaluated
    result = evaluate(run, qrels, ["RR"])
    assert result.queries == ["q1", "q2"]
    assert result.notes == ["2 run queries without judgments ignored"]
    assert result.aggregate == evaluate(TOY_RUN, TOY_QRELS, ["RR"]).aggregate


@pytest.mark.parametrize("run", [Run.from_dict({}), Run.from_dict({"q1": {}})])
def test_empty_run_is_an_input_error(run):
    with pytest.raises(InputError, match="empty"):
        evaluate(run, TOY_QRELS, ["AP"])


def test_run_without_judged_queries_is_an_input_error():
    with pytest.raises(InputError, match="no results for any"):
        evaluate(Run.from_dict({"x": {"d1": 1.0}}), TOY_QRELS, ["AP"])


# --- equality with pytrec_eval on TREC DL 2019 -------------------------------------------------------

@pytest.fixture(scope="module")
def dl19():
    if not DL19.is_dir():
        pytest.skip(f"{DL19} not available")
    run_path = DL19 / "bm25_top100.run.trec"
    raw: dict[str, dict[str, float]] = {}  # read independently of Run, scores as float64
    for line in run_path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        raw.setdefault(qid, {})[docid] = float(score)
    return Run.read(run_path, name="bm25"), Qrels.read(DL19 / "2019qrels-pass.txt"), raw


def assert_matches_pytrec_eval(result, qrels, raw, pairs, relevance_level=1):
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator({q: dict(d) for q, d in qrels.items()},
                                               {name for name, _ in pairs}, relevance_level=relevance_level)
    reference = evaluator.evaluate(raw)
    assert set(reference) == set(result.queries)
    for name, measure in pairs:
        key = {"ndcg_cut.10": "ndcg_cut_10", "recall.100": "recall_100"}.get(name, name)
        for qid, values in reference.items():
            assert result.per_query[measure][qid] == pytest.approx(values[key], abs=1e-9), (measure, qid)


def test_dl19_matches_pytrec_eval(dl19):
    run, qrels, raw = dl19
    result = evaluate(run, qrels, ["nDCG@10", "R@100", "MAP", "MRR"])
    assert result.num_queries == 43
    assert round(result.aggregate["nDCG@10"], 4) == 0.5058  # Anserini's published BM25 figure
    assert_matches_pytrec_eval(result, qrels, raw, [("ndcg_cut.10", "nDCG@10"), ("recall.100", "R@100"),
                                                    ("map", "AP"), ("recip_rank", "RR")])


def test_dl19_relevance_level_matches_pytrec_eval(dl19):
    run, qrels, raw = dl19
    result = evaluate(run, qrels, ["R@100 rel>=2", "AP(rel=2)"])
    assert_matches_pytrec_eval(result, qrels, raw, [("recall.100", "R(rel=2)@100"), ("map", "AP(rel=2)")],
                               relevance_level=2)


# --- significance ----------------------------------------------------------------------------------

def synthetic(num_queries=50, seed=0):
    """Qrels with 3 relevant of 20 documents per query, a random baseline and a run ranking relevant first."""
    rng = np.random.default_rng(seed)
    qrels, baseline, better = {}, {}, {}
    for q in range(num_queries):
        qid, docs = f"q{q}", [f"d{i}" for i in range(20)]
        qrels[qid] = {d: int(i < 3) for i, d in enumerate(docs)}
        baseline[qid] = dict(zip(docs, rng.permutation(20).astype(float)))
        better[qid] = {d: s + (20 if i < 3 and rng.random() < 0.8 else 0) for i, (d, s) in
                       enumerate(baseline[qid].items())}
    return Qrels(qrels), Run.from_dict(baseline, name="random"), Run.from_dict(better, name="better")


def test_run_against_itself_is_not_significant():
    qrels, run, _ = synthetic()
    for test in ("t-test", "wilcoxon"):
        result = compare([run, run], qrels, ["AP", "nDCG@10"], test=test).result(1, "AP")
        assert (result.p, result.p_corrected, result.delta, result.significant) == (1.0, 1.0, 0.0, False)


@pytest.mark.parametrize("test, scipy_test", [("t-test", stats.ttest_rel), ("wilcoxon", stats.wilcoxon)])
def test_clearly_better_run_is_significant(test, scipy_test):
    qrels, baseline, better = synthetic()
    comparison = compare([baseline, better], qrels, ["AP", "nDCG@10"], test=test)
    assert isinstance(comparison, Comparison)
    for measure in ("AP", "nDCG@10"):
        result = comparison.result("better", measure)
        x = list(comparison.evaluations[1].per_query[measure].values())
        y = list(comparison.evaluations[0].per_query[measure].values())
        assert result.p == pytest.approx(scipy_test(x, y).pvalue, rel=1e-12)
        assert result.p_corrected == result.p  # a single compared run: nothing to correct
        assert result.significant and result.p < 1e-6 and result.num_paired == 50
        assert result.delta == pytest.approx(np.mean(np.subtract(x, y)))
        assert result.mean == comparison.evaluations[1].aggregate[measure]
        base = comparison.result(0, measure)
        assert (base.p, base.p_corrected, base.delta, base.significant) == (None, None, 0.0, False)


def test_holm_correction_by_hand():
    assert adjust_pvalues([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_pvalues([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjust_pvalues([0.01, 0.04, 0.03], None) == [0.01, 0.04, 0.03]
    assert adjust_pvalues([0.5, float("nan"), 0.01], "holm") == pytest.approx([0.5, float("nan"), 0.02],
                                                                              nan_ok=True)


def test_compare_applies_holm_across_runs():
    qrels, baseline, better = synthetic()
    _, other, _ = synthetic(seed=1)
    _, _, third = synthetic(seed=2)
    runs = [baseline, better, Run.from_dict(other.to_dict(), name="other"),
            Run.from_dict(third.to_dict(), name="third")]
    comparison = compare(runs, qrels, ["AP"], correction="holm")
    p = [comparison.result(i, "AP").p for i in (1, 2, 3)]
    order = sorted(range(3), key=p.__getitem__)
    expected, running = [0.0] * 3, 0.0
    for rank, i in enumerate(order):  # Holm step-down: (m - rank) * p, kept monotone, capped at 1
        running = max(running, min(1.0, (3 - rank) * p[i]))
        expected[i] = running
    assert [comparison.result(i, "AP").p_corrected for i in (1, 2, 3)] == pytest.approx(expected)
    assert [comparison.result(i, "AP").significant for i in (1, 2, 3)] == [e < 0.05 for e in expected]


def test_paired_pvalue_edge_cases():
    assert paired_pvalue([0.2, 0.3, 0.5], [0.2, 0.3, 0.5], "wilcoxon") == 1.0
    assert math.isnan(paired_pvalue([0.2], [0.1]))


def test_compare_pairs_common_queries_or_all_with_complete():
    qrels, baseline, better = synthetic()
    partial = Run.from_dict({q: h for q, h in better.to_dict().items() if q != "q0"}, name="partial")
    with pytest.warns(UserWarning):
        assert compare([baseline, partial], qrels, ["AP"]).result(1, "AP").num_paired == 49
    complete = compare([baseline, partial], qrels, ["AP"], complete=True)
    assert complete.result(1, "AP").num_paired == 50
    assert complete.evaluations[1].per_query["AP"]["q0"] == 0.0


def test_compare_rejects_bad_settings():
    qrels, baseline, better = synthetic(5)
    for kwargs in ({"test": "sign"}, {"correction": "fdr"}, {"baseline": "nope"}, {"baseline": 2}, {"alpha": 0}):
        with pytest.raises(InputError):
            compare([baseline, better], qrels, ["AP"], **kwargs)


# --- output ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def comparison():
    qrels, baseline, better = synthetic()
    return compare([baseline, better, Run.from_dict(baseline.to_dict(), name="same")], qrels, ["nDCG@10", "MAP"])


def test_table(comparison):
    table = comparison.to_table()
    lines = table.splitlines()
    assert lines[0].split() == ["run", "nDCG@10", "AP"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    for i, name in enumerate(["random", "better", "same"]):
        for measure in ("nDCG@10", "AP"):
            result = comparison.result(i, measure)
            cell = f"{result.mean:.4f}" + (MARKER if result.significant else "")
            assert cell in rows[name].split()
    assert "(baseline)" in rows["random"] and "(baseline)" not in rows["better"]
    assert MARKER in rows["better"] and MARKER not in rows["random"] and MARKER not in rows["same"]
    assert lines[1].index("0.") == lines[2].index("0.")  # aligned columns
    footnote = lines[4]
    assert footnote.startswith(MARKER) and "paired t-test" in footnote and "Holm" in footnote
    assert "50 queries" in footnote


def test_json_round_trip(comparison):
    data = json.loads(comparison.to_json())
    assert data["baseline"] == "random" and data["measures"] == ["nDCG@10", "AP"]
    assert (data["test"], data["correction"], data["alpha"]) == ("t-test", "holm", 0.05)
    assert [run["name"] for run in data["runs"]] == ["random", "better", "same"]
    for i, run in enumerate(data["runs"]):
        assert run["baseline"] == (i == 0) and run["num_queries"] == 50
        for measure, values in run["results"].items():
            result = comparison.result(i, measure)
            assert values == {"mean": result.mean, "delta": result.delta, "p": result.p,
                              "p_corrected": result.p_corrected, "significant": result.significant,
                              "num_paired": 50}
        assert run["per_query"] == comparison.evaluations[i].per_query


def test_csv_round_trip(comparison):
    rows = list(csv.DictReader(io.StringIO(comparison.to_csv())))
    assert len(rows) == 3 * 2
    for row in rows:
        result = comparison.result(row["run"], row["measure"])
        assert float(row["mean"]) == result.mean and float(row["delta"]) == result.delta
        assert row["significant"] == str(result.significant)
        if row["run"] == "random":
            assert row["p"] == row["p_corrected"] == ""
        else:
            assert float(row["p"]) == result.p and float(row["p_corrected"]) == result.p_corrected


def test_single_evaluation_output():
    result = evaluate(TOY_RUN, TOY_QRELS, ["RR", "P@2"])
    table = result.to_table()
    assert table.splitlines()[1].split() == ["toy", "0.4167", "0.2500"]
    assert "(baseline)" not in table and MARKER not in table and "2 queries" in table
    assert json.loads(result.to_json())["runs"][0]["results"]["RR"]["mean"] == pytest.approx(5 / 12)
    row = list(csv.reader(io.StringIO(result.to_csv())))[1]
    assert row[:2] == ["toy", "RR"] and float(row[2]) == pytest.approx(5 / 12)
