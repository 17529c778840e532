"""Zero-shot fusion: reliability estimated without judgments (corroboration by the other branches, head-to-head
log-rank advantage) checked by hand; a branch nothing corroborates loses its weight; calibrated weights; the stage's
repr rebuilds it."""

import math

import numpy as np
import pytest

from rankstack import Queries
from rankstack.errors import InputError
from rankstack.pipeline.config import parse
from rankstack.pipeline.fusion import Fusion, fuse, normalise
from rankstack.pipeline.reliability import estimate_reliability
from tests.pipeline.test_pipeline import Fixed

Q = Queries({f"q{i}": "text" for i in range(4)})


def ranked(docs, top=10.0):
    return {d: top - i for i, d in enumerate(docs)}


def branches():
    """A and B find the same documents (in different orders); C returns documents nobody else does."""
    a = Fixed({q: ranked([f"{q}-d{j}" for j in range(10)]) for q in Q}, "A")
    b = Fixed({q: ranked([f"{q}-d{j}" for j in (1, 0, 2, 3, 5, 4, 6, 7, 9, 8)], 0.9) for q in Q}, "B")
    c = Fixed({q: ranked([f"{q}-junk{j}" for j in range(10)], 50.0) for q in Q}, "C")
    return a, b, c


def test_a_branch_nothing_corroborates_gets_no_weight():
    a, b, c = branches()
    reliability = estimate_reliability([a(Q), b(Q), c(Q)])
    assert reliability.weights == pytest.approx([0.5, 0.5, 0.0])
    assert reliability.corroboration == pytest.approx([1.0, 1.0, 0.0])
    fused = (a | b | c).auto()(Q)
    assert all("junk" not in d for q in Q for d in fused.ids(q)[:10])
    assert all("junk" in d for q in Q for d in fused.ids(q)[10:])


def test_auto_sums_weighted_zscores_counted_from_each_runs_last_hit():
    a, b, c = branches()
    runs = [a(Q), b(Q), c(Q)]
    weights = estimate_reliability(runs).weights
    z = normalise(np.arange(10.0, 0, -1), "zscore")
    z -= z.min()
    expected = {f"q1-d{j}": weights[0] * z[j] + weights[1] * z[[1, 0, 2, 3, 5, 4, 6, 7, 9, 8].index(j)]
                for j in range(10)}
    expected.update({f"q1-junk{j}": 0.0 for j in range(10)})
    assert dict(fuse(runs, "auto", norm="zscore").hits("q1")) == pytest.approx(expected)
    # a prior multiplies the estimates
    prior = dict(fuse(runs, "auto", [3.0, 1.0, 1.0], norm="zscore").hits("q1"))
    assert prior["q1-d0"] == pytest.approx(3 * weights[0] * z[0] + weights[1] * z[1])


def test_head_to_head_advantage_by_hand():
    a = Fixed({"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, "A")
    b = Fixed({"q": {"c": 4.0, "d": 3.0, "a": 2.0, "b": 1.0}}, "B")
    one = Queries({"q": "x"})
    r = estimate_reliability([a(one), b(one)], depth=2, sharpness=1.0)
    # B's top 2 (c, d) in A: ranks 2 and missing (the longest list's length, 4); A's top 2 (a, b) in B: 2 and 3
    a_ranks_b = (math.log1p(2) + math.log1p(4)) / 2
    b_ranks_a = (math.log1p(2) + math.log1p(3)) / 2
    assert r.advantage == pytest.approx([b_ranks_a - a_ranks_b, a_ranks_b - b_ranks_a])
    w = [math.exp(2 * (b_ranks_a - a_ranks_b)), 1.0]
    assert r.weights == pytest.approx([w[0] / sum(w), 1 / sum(w)])
    assert r.corroboration == pytest.approx([0.0, 0.0])  # nothing corroborated: no branch is set aside


def test_identical_and_disjoint_pairs_get_equal_weights():
    a, b, c = branches()
    assert estimate_reliability([a(Q), c(Q)]).weights == pytest.approx([0.5, 0.5])
    assert estimate_reliability([a(Q), a(Q)]).weights == pytest.approx([0.5, 0.5])


def test_calibrate_keeps_the_weights():
    a, b, c = branches()
    calibrated = (a | b | c).auto().calibrate(Q)
    assert calibrated.weights == pytest.approx([0.5, 0.5, 0.0])
    assert repr(calibrated) == "(A | B | C).auto(weights=[0.5, 0.5, 0.0], estimate=False)"
    one = Queries({"q0": "text"})
    assert calibrated(one).hits("q0") == calibrated(Q).hits("q0")  # a query's results no longer depend on the batch
    with pytest.raises(InputError, match="calibrate applies to auto"):
        (a | b).rrf().calibrate(Q)
    with pytest.raises(InputError, match="needs weights"):
        Fusion([a, b], "auto", estimate=False)


def test_auto_repr_round_trips():
    a, b, c = branches()
    stages = {"A": a, "B": b, "C": c}
    for fusion in ((a | b | c).auto(), (a | b).auto(norm="minmax"), (a | b).auto(weights=[1.0, 2.0]),
                   (a | b).auto(weights=[0.25, 0.75], estimate=False)):
        text = repr(fusion)
        again = parse(text, stages)
        assert repr(again) == text and isinstance(again, Fusion)
        assert again(Q).to_dict() == fusion(Q).to_dict()
    assert repr((a | b | c).auto()) == "(A | B | C).auto()"
    with pytest.raises(InputError, match="unknown fusion method"):
        fuse([a(Q)], "magic")


def test_normalise_unchanged():
    assert normalise(np.array([1.0, 3.0]), "zscore") == pytest.approx([-1.0, 1.0])
