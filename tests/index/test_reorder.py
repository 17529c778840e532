"""Document reordering (recursive graph bisection): a permutation that brings documents sharing terms together,
and an index built, updated and merged with it answers every query with the same ids and scores as without."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack import BM25, Document, Queries
from rankstack.errors import InputError
from rankstack.index.inverted import IndexWriter
from rankstack.index.reorder import bisection_order

WORDS = [f"w{i}" for i in range(40)]


def log_gaps(term_ids: np.ndarray, docnos: np.ndarray) -> float:
    """The log-gap cost of postings: what compression pays for, what bisection lowers."""
    total = 0.0
    for t in np.unique(term_ids):
        d = np.sort(docnos[term_ids == t])
        total += float(np.log2(np.diff(d) + 1).sum())
    return total


def test_bisection_groups_documents_that_share_terms():
    """Four topics interleaved (doc d is about topic d % 4): the new order keeps topics together."""
    rng = np.random.default_rng(0)
    docs = np.repeat(np.arange(2000), 12)
    terms = np.concatenate([rng.choice(100, 12, replace=False) + 100 * (d % 4) for d in range(2000)])
    order = bisection_order(terms, docs, 2000)
    assert sorted(order.tolist()) == list(range(2000))
    assert np.array_equal(order, bisection_order(terms, docs, 2000))  # deterministic
    new = np.empty(2000, np.int64)
    new[order] = np.arange(2000)
    assert log_gaps(terms, new[docs]) < 0.75 * log_gaps(terms, docs)
    topic_runs = np.count_nonzero(np.diff(order % 4))  # topic changes along the new order (1999 before)
    assert topic_runs < 100


def test_tiny_or_empty_segments_keep_their_order():
    assert bisection_order(np.array([0, 1]), np.array([0, 1]), 2).tolist() == [0, 1]
    assert bisection_order(np.zeros(0, np.int64), np.zeros(0, np.int64), 100).tolist() == list(range(100))


def corpus(seed: int, n: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 5, n)
    return [Document(f"d{i:04d}", " ".join(rng.choice(WORDS[8 * topic[i]:8 * topic[i] + 12],
                                                       int(rng.integers(1, 15)))))
            for i in range(n)]


def hits_by_score(run, qid: str) -> dict[float, set[str]]:
    """The ids of each score: the run's answer up to the order of tied documents (which follows docnos)."""
    groups: dict[float, set[str]] = {}
    for doc, score in run.hits(qid):
        groups.setdefault(score, set()).add(doc)
    return groups


def same_answers(plain: BM25, reordered: BM25, queries: Queries, k: int) -> None:
    a, b = plain(queries), reordered(queries)
    for q in queries:
        ha, hb = hits_by_score(a, q), hits_by_score(b, q)
        assert sorted(ha) == sorted(hb), q  # the same scores
        lowest = min(ha, default=None)
        for score in ha:  # the same documents, except where a tie straddles the k-th hit
            if score != lowest or sum(map(len, ha.values())) < k:
                assert ha[score] == hb[score], (q, score)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 10_000), st.integers(40, 400), st.sampled_from(["maxscore", "bmw", "bmp", "exhaustive"]),
       st.sampled_from([5, 50]))
def test_reordered_index_answers_as_the_plain_one(tmp_path_factory, seed, n, algorithm, k):
    docs = corpus(seed, n)
    tmp = tmp_path_factory.mktemp("reorder")
    plain = BM25.build(docs, tmp / "plain", progress=False, k=k, algorithm=algorithm)
    reordered = BM25.build(docs, tmp / "reordered", progress=False, k=k, algorithm=algorithm, reorder=True)
    rng = np.random.default_rng(seed)
    queries = Queries({str(i): " ".join(rng.choice(WORDS, int(rng.integers(1, 5)))) for i in range(30)})
    same_answers(plain, reordered, queries, k)
    # ids, stored texts and lengths moved with their documents
    index = reordered.index
    for doc in docs[:: max(1, n // 20)]:
        assert json.loads(index.stored([index.docno(doc.id)])[0])["text"] == doc.text


def test_reordering_survives_updates_deletes_and_merges(tmp_path):
    docs = corpus(1, 600)
    plain = BM25.build(docs[:300], tmp_path / "plain", progress=False, k=20)
    reordered = BM25.build(docs[:300], tmp_path / "reordered", progress=False, k=20, reorder=True)
    for stage in (plain, reordered):
        stage.add(docs[300:])
        stage.delete([d.id for d in docs[::7]])
    queries = Queries({str(i): " ".join(WORDS[i:i + 3]) for i in range(0, 38, 2)})
    same_answers(plain, reordered, queries, 20)
    for path in (tmp_path / "plain", tmp_path / "reordered"):
        with IndexWriter(path) as writer:
            writer.force_merge(1)
    plain, reordered = BM25(tmp_path / "plain", k=20), BM25(tmp_path / "reordered", k=20)
    assert len(reordered.index.manifest.segments) == 1 and reordered.index.settings["reorder"] is True
    same_answers(plain, reordered, queries, 20)
    assert all(d.id not in {h for h, _ in reordered(queries).hits(q)} for d in docs[::7] for q in queries)


def test_reordered_segment_has_shorter_gaps(tmp_path):
    """What bisection optimises, measured on the segment written: the log-gap cost of its postings."""
    docs = corpus(2, 3000)
    cost = {}
    for name, reorder in (("plain", False), ("reordered", True)):
        segment = BM25.build(docs, tmp_path / name, progress=False, store=False, reorder=reorder).index.segments[0]
        offsets, docnos, _ = segment.decode_all()
        cost[name] = log_gaps(np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)), docnos)
    assert cost["reordered"] < 0.75 * cost["plain"]


def test_reorder_setting_must_be_a_bool(tmp_path):
    with pytest.raises(InputError, match="reorder must be True or False"):
        IndexWriter(tmp_path / "x", {"reorder": "yes"})
