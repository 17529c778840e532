import numpy as np
import pytest

from rankstack import CutOff, Fusion, Pipeline, Queries, Run, Stage, fuse
from rankstack.errors import InputError


class Fixed(Stage):
    """A first stage returning a fixed run (for testing composition)."""
    first_stage = True

    def __init__(self, results, name):
        self.run, self.name = Run.from_dict(results, name=name), name

    def transform(self, queries, run=None):
        return Run({q: self.run[q] for q in queries if q in self.run}, self.run.doc_ids, name=self.name,
                   presorted=True)

    def __repr__(self):
        return self.name


class Negate(Stage):
    """A second stage that reverses the candidates' order."""

    def transform(self, queries, run=None):
        return Run({q: (h.docnos, -h.scores) for q, h in run.items()}, run.doc_ids, name="neg")


A = Fixed({"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, "A")
B = Fixed({"q": {"c": 10.0, "d": 5.0, "a": 1.0}}, "B")
Q = Queries({"q": "anything"})


def test_cutoff_and_then():
    pipeline = A % 2 >> Negate()
    assert isinstance(pipeline, Pipeline) and repr(pipeline) == "A % 2 >> Negate()"
    assert pipeline(Q).ids("q") == ["b", "a"]
    assert Pipeline([A, CutOff(2), Negate()])(Q).ids("q") == ["b", "a"]
    with pytest.raises(InputError, match="second stage"):
        Negate()(Q)
    with pytest.raises(InputError, match="positive integer"):
        CutOff(0)


def test_rrf_by_hand():
    run = (A | B).rrf(k=60)(Q)
    expected = {"a": 1 / 61 + 1 / 63, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62}
    assert dict(run.hits("q")) == pytest.approx(expected)
    assert run.ids("q")[:2] == ["a", "c"]  # tie on score broken by doc number
    assert repr(A | B) == "(A | B).rrf(k=60)"


def test_combsum_combmnz_interpolate():
    s = dict((A | B).combsum(norm="minmax")(Q).hits("q"))
    # minmax: A a=1, b=.5, c=0 ; B c=1, d=4/9, a=0
    assert s == pytest.approx({"a": 1.0, "b": 0.5, "c": 1.0, "d": 4 / 9})
    m = dict((A | B).combmnz()(Q).hits("q"))
    assert m == pytest.approx({"a": 2.0, "b": 0.5, "c": 2.0, "d": 4 / 9})
    i = dict((A | B).interpolate([0.25, 0.75])(Q).hits("q"))
    assert i == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.75 * 4 / 9})
    z = dict(fuse([A(Q), B(Q)], "combsum", norm="zscore").hits("q"))
    sa, sb = np.array([3.0, 2, 1]), np.array([10.0, 5, 1])
    za, zb = (sa - sa.mean()) / sa.std(), (sb - sb.mean()) / sb.std()
    assert z == pytest.approx({"a": za[0] + zb[2], "b": za[1], "c": za[2] + zb[0], "d": zb[1]})


def test_three_way_fusion_flattens_and_feeds_second_stages():
    C = Fixed({"q": {"e": 1.0}}, "C")
    fusion = A | B | C
    assert isinstance(fusion, Fusion) and len(fusion.branches) == 3
    assert set((fusion % 3 >> Negate())(Q).ids("q")) <= {"a", "b", "c", "d", "e"}
    with pytest.raises(InputError, match="2 weights for 3 branches"):
        fusion.interpolate([1, 2])
    with pytest.raises(InputError, match="unknown normalisation"):
        (A | B).combsum(norm="softmax")


def test_from_run_replays_a_run_file_as_a_first_stage(tmp_path):
    from rankstack import FromRun
    from rankstack.pipeline.config import parse

    path = tmp_path / "run.trec"
    Run.from_dict({"q": {"a": 3.0, "b": 2.0}, "other": {"c": 1.0}}).write_trec(path)
    stage = FromRun(path)
    run = (stage % 1)(Queries({"q": "x", "unknown": "y"}))
    assert run.hits("q") == [("a", 3.0)] and "unknown" not in run and "other" not in run
    assert parse(repr(stage))(Q).ids("q") == ["a", "b"]  # the repr rebuilds it


def test_a_cut_off_asks_the_first_stage_for_only_that_many_hits(tmp_path, monkeypatch):
    from rankstack import BM25, Document
    from rankstack.index.inverted import InvertedIndex

    docs = [Document(f"d{i}", f"cell {'growth ' * (i % 7)}{i}") for i in range(3000)]
    bm25 = BM25.build(docs, tmp_path / "idx", progress=False)
    asked = []
    search = InvertedIndex.search
    monkeypatch.setattr(InvertedIndex, "search", lambda self, qs, k, *a, **kw: (
        asked.append(k), search(self, qs, k, *a, **kw))[1])
    queries = Queries({"q": "cell growth"})
    assert len((bm25 % 10)(queries)["q"].docnos) == 10 and asked == [10]  # the kernel ran at k=10, not 1000
    assert (bm25 % 10)(queries).hits("q") == bm25(queries).cut(10).hits("q")
    assert len((bm25 % 100 >> Negate())(queries)["q"].docnos) == 100 and asked[-1] == 100
    assert repr(bm25 % 10) == f"{bm25!r} % 10"  # the pipeline still reads as written
    assert len(bm25.search("cell", k=3000)) == 3000 and asked[-1] == 3000  # beyond the stage's own k=1000
    assert len((bm25 % 10).search("cell", k=3000)) == 10  # an explicit cut-off still holds
    assert len((bm25 % 50).search("cell", k=5)) == 5 and asked[-1] == 5
    assert (bm25 | bm25).rrf().at_depth(5) is None  # a fused ranking is cut after fusing
    for bad in (2.5, "10", 0, True):
        with pytest.raises(InputError, match="k must be"):
            bm25.search("cell", k=bad)
    with pytest.raises(InputError, match="query must be a string"):
        bm25.search(123)


def test_a_cached_stage_never_serves_results_of_an_older_index(tmp_path):
    from rankstack import BM25, Document

    docs = [Document("a", "horses and cows"), Document("b", "cows in fields")]
    bm25 = BM25.build(docs, tmp_path / "idx", progress=False)
    cached = bm25.cached(tmp_path / "cache")
    queries = Queries({"q1": "zebra", "q2": "cows"})
    assert cached(queries)["q1"].docnos.tolist() == []
    bm25.add([Document("z", "zebra stripes")])
    assert cached.search("zebra") == bm25.search("zebra") and cached.search("zebra")[0][0] == "z"
    assert cached(queries).hits("q2") == bm25(queries).hits("q2")
    rebuilt = BM25.build([Document("n", "zebra crossing")], tmp_path / "idx", overwrite=True, progress=False)
    again = BM25(tmp_path / "idx").cached(tmp_path / "cache")  # same repr, same cache folder, new content
    assert again.search("zebra") == rebuilt.search("zebra") and again.search("zebra")[0][0] == "n"
    first = again(queries)
    assert again.hits == 0 and again(queries).hits("q1") == first.hits("q1") and again.hits == 2  # unchanged: cached
