import pytest

from rankstack import Queries
from rankstack.errors import InputError
from rankstack.pipeline.tuning import grid_search, weight_grid
from tests.pipeline.test_pipeline import Fixed

# Two branches that each find one of the two relevant documents at rank 1 of a different query:
# A is right on q1 and wrong on q2, B the opposite, with different score scales.
A = Fixed({"q1": {"r1": 9.0, "x": 8.0}, "q2": {"y": 30.0, "r2": 1.0}}, "A")
B = Fixed({"q1": {"x": 0.9, "r1": 0.1}, "q2": {"r2": 0.5, "y": 0.4}}, "B")
Q = Queries({"q1": "one", "q2": "two"})
QRELS = {"q1": {"r1": 1}, "q2": {"r2": 1}}


def test_weight_grid_covers_the_simplex():
    grid = weight_grid(3, step=0.25)
    assert len(grid) == 3  # (0.25, 0.25, 0.5) and its permutations: every branch keeps a weight
    assert all(sum(w) == pytest.approx(1) and min(w) > 0 for w in grid)
    assert len(weight_grid(2, 0.1)) == 9 and len(weight_grid(3, 0.1)) == 36
    with pytest.raises(InputError, match="step"):
        weight_grid(2, 0.3)


def test_grid_search_finds_the_weights_that_fix_both_queries():
    runs = [A(Q), B(Q)]
    search = grid_search(runs, QRELS, method="combsum", measure="RR", step=0.1)
    # minmax: q1 A: r1=1, x=0; B: x=1, r1=0 -> r1 wins iff wA > wB. q2 A: y=1, r2=0; B: r2=1, y=0 -> wB > wA.
    # No weighting ranks both first; ties keep the earliest grid point with the best mean RR (0.75).
    assert search.score == pytest.approx(0.75)
    assert search.weights == pytest.approx((0.1, 0.9))
    assert len(search.trials) == 9 and "RR" in search.to_table()


def test_fusion_tune_returns_a_fusion_with_the_best_setting():
    tuned = (A | B).rrf().tune(Q, QRELS, measure="RR", step=0.5, ks=[1, 60])
    assert tuned.method == "rrf" and tuned.weights == [0.5, 0.5] and tuned.k in (1, 60)
    assert [t[1] for t in tuned.tuning.trials] == [1, 60]
    assert tuned(Q).num_hits() == 4  # the tuned fusion is a usable stage
    with pytest.raises(InputError, match="entries"):
        grid_search([A(Q), B(Q)], QRELS, weights=[[1.0]])
