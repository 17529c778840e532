"""Hard-negative mining: positives never become negatives, false negatives are filtered by a teacher, sampling
ranges and counts hold, teacher scores are attached (BM25 over a toy corpus)."""

import numpy as np
import pytest

from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.pipeline.stage import FromRun
from rankstack.rerank.base import Reranker
from rankstack.train.examples import load_examples, save_examples
from rankstack.train.mining import (FalseNegativeFilter, attach_teacher_scores, drop_false_negatives, mine_negatives,
                                    stage_scores)
from tests.train.conftest import DOCS, QRELS, QUERIES


@pytest.fixture(scope="module")
def bm25(tmp_path_factory, corpus_file):
    from rankstack.retrieve.bm25 import BM25
    return BM25.build(corpus_file, tmp_path_factory.mktemp("idx") / "bm25", progress=False)


QS, QR = Queries(QUERIES), Qrels(QRELS)


def test_positives_never_negatives_and_judged_nonrelevant_allowed(bm25):
    mined = mine_negatives(bm25, QS, QR, depth=8, count=7)
    pairs = {(q, d) for q, ds in QRELS.items() for d, r in ds.items() if r}
    assert {(e.qid, e.positive) for e in mined.examples} == pairs
    for e in mined.examples:
        relevant = {d for d, r in QRELS[e.qid].items() if r}
        assert not relevant & set(e.negatives)
        assert len(e.negatives) == len(set(e.negatives)) > 0
        assert e.query == QUERIES[e.qid]
    # d8 is judged non-relevant (0) for q3: a negative like any other (bm25 retrieves it for "p53 apoptosis"? only
    # if it matches), never dropped for being judged
    run = bm25(QS.subset(["q3"]))
    q3 = next(e for e in mined.examples if e.qid == "q3")
    assert [d for d in run.ids("q3") if d != "d3"][:7] == q3.negatives


def test_range_count_and_sampling(bm25):
    ranked = {q: bm25(QS.subset([q])).ids(q) for q in QUERIES}
    top = mine_negatives(bm25, QS, QR, depth=8, start=1, end=6, count=2)
    for e in top.examples:
        relevant = {d for d, r in QRELS[e.qid].items() if r}
        assert e.negatives == [d for d in ranked[e.qid][1:6] if d not in relevant][:2]
    a = mine_negatives(bm25, QS, QR, depth=8, start=0, end=8, count=3, sampling="random", seed=1)
    b = mine_negatives(bm25, QS, QR, depth=8, start=0, end=8, count=3, sampling="random", seed=1)
    c = mine_negatives(bm25, QS, QR, depth=8, start=0, end=8, count=3, sampling="random", seed=2)
    assert [e.negatives for e in a.examples] == [e.negatives for e in b.examples]
    assert [e.negatives for e in a.examples] != [e.negatives for e in c.examples]
    for e in a.examples:
        order = [d for d in ranked[e.qid] if d in e.negatives]
        assert e.negatives == order and len(e.negatives) == 3  # kept in rank order
    assert a.describe()["examples"] == 7 and a.settings["sampling"] == "random"


def test_false_negative_filter_drops_what_the_teacher_ranks_above_the_positive(bm25):
    # a teacher that ranks d7 and d8 above every positive, d2 just below q1's positive d1
    teacher = FromRun(Run.from_dict({q: {"d7": 10.0, "d8": 9.0, **{d: 5.0 for d, r in QRELS[q].items() if r}, "d2": 4.5}
                                     for q in QUERIES}))
    plain = mine_negatives(bm25, QS, QR, depth=8, count=7)
    kept = mine_negatives(bm25, QS, QR, depth=8, count=7, filter=FalseNegativeFilter(teacher))
    strict = mine_negatives(bm25, QS, QR, depth=8, count=7, filter=FalseNegativeFilter(teacher, margin=1.0))
    for e in kept.examples:
        assert not {"d7", "d8"} & set(e.negatives)
    assert any("d2" in e.negatives for e in kept.examples if e.qid == "q1")
    assert all("d2" not in e.negatives for e in strict.examples)  # 4.5 > 5 - 1
    dropped = sum(len(p.negatives) - len(k.negatives) for p, k in zip(plain.examples, kept.examples))
    assert dropped > 0
    assert kept.filtered >= dropped // 2  # q6 has two examples sharing its candidates
    assert kept.describe()["filtered_as_false_negatives"] == kept.filtered


def test_drop_false_negatives_edge_cases():
    # the teacher did not score the positive: nothing is dropped; unscored candidates are kept
    assert drop_false_negatives(["a", "b"], ["p"], {"a": 9.0}, 0.0) == ["a", "b"]
    assert drop_false_negatives(["a", "b", "c"], ["p"], {"p": 1.0, "a": 2.0, "b": 1.0}, 0.0) == ["b", "c"]
    assert drop_false_negatives(["a", "b"], ["p", "p2"], {"p": 3.0, "p2": 1.0, "a": 2.0, "b": 0.5}, 0.0) == ["b"]


class LengthReranker(Reranker):
    """Scores a document by the length of its id (deterministic; no model)."""

    def score(self, queries, heads, doc_ids):
        return {q: np.array([len(d) + int(d[-1]) for d in doc_ids.take(h)], np.float32) for q, h in heads.items()}


def test_stage_scores_first_and_second_stages(bm25):
    wanted = {"q1": ["d1", "d2", "d8"], "q2": ["d2"]}
    first = stage_scores(bm25, QS, wanted)
    run = bm25(QS.subset(["q1", "q2"]))
    assert first["q1"] == {d: s for d, s in run.hits("q1") if d in wanted["q1"]}
    second = stage_scores(LengthReranker(), QS, wanted)
    assert second == {"q1": {"d1": 3.0, "d2": 4.0, "d8": 10.0}, "q2": {"d2": 4.0}}


def test_attach_teacher_scores_and_round_trip(bm25, tmp_path):
    mined = mine_negatives(bm25, QS, QR, depth=3, count=2)
    teacher = FromRun(Run.from_dict({q: {"d1": 2.0, "d2": 1.0} for q in QUERIES}))
    examples = attach_teacher_scores(mined.examples, teacher, QS)
    for e in examples:
        assert set(e.teacher) == {e.positive, *e.negatives}
        for d, s in e.teacher.items():
            assert s == {"d1": 2.0, "d2": 1.0}.get(d, 1.0)  # unscored: the query's lowest teacher score
    save_examples(examples, tmp_path / "ex.jsonl")
    assert load_examples(tmp_path / "ex.jsonl") == examples
    (tmp_path / "bad.jsonl").write_text('{"qid": "q"}\n')
    with pytest.raises(InputError, match="line 1"):
        load_examples(tmp_path / "bad.jsonl")


def test_bad_mining_settings(bm25):
    with pytest.raises(InputError, match="start < end"):
        mine_negatives(bm25, QS, QR, depth=5, start=5)
    with pytest.raises(InputError, match="sampling"):
        mine_negatives(bm25, QS, QR, sampling="best")
    with pytest.raises(InputError, match="no query has a judged-relevant"):
        mine_negatives(bm25, QS, Qrels({"other": {"d1": 1}}))
