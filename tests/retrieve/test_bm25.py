import json
import math

import pytest

from rankstack import BM25, Analyzer, Corpus, Document, Queries, Run
from rankstack.errors import IndexFormatError, InputError

DOCS = [
    Document("d1", "the cat sat on the mat"),
    Document("d2", "the dog chased the cat and the cat ran", "Cats"),
    Document("d3", "dogs and cats"),
    Document("d4", "a completely unrelated document about finance and markets"),
]


def lucene_bm25(query_terms, docs_terms, k1=0.9, b=0.4):
    """BM25 as Lucene computes it (no (k1+1) factor), with exact lengths, written out by hand."""
    n = len(docs_terms)
    avgdl = sum(len(d) for d in docs_terms) / n
    scores = []
    for terms in docs_terms:
        s = 0.0
        for t in query_terms:
            df = sum(1 for d in docs_terms if t in d)
            tf = terms.count(t)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * tf / (tf + k1 * (1 - b + b * len(terms) / avgdl))
        scores.append(s)
    return scores


@pytest.fixture
def bm25(tmp_path):
    return BM25.build(DOCS, tmp_path / "idx", length_norm="exact", progress=False)


def test_scores_match_hand_computed_bm25(bm25):
    analyzer = Analyzer()
    docs_terms = [analyzer.analyze(d.contents) for d in DOCS]
    assert docs_terms[1] == ["cat", "dog", "chase", "cat", "cat", "ran"]
    expected = lucene_bm25(["cat", "dog"], docs_terms)
    hits = dict(bm25.search("cat dogs", k=10))
    assert set(hits) == {"d1", "d2", "d3"}
    for doc, score in zip(DOCS, expected):
        if score:
            assert hits[doc.id] == pytest.approx(score, rel=1e-6)
    assert [d for d, _ in bm25.search("cat dogs")] == sorted(hits, key=lambda d: -hits[d])


def test_lucene_length_norm_changes_only_long_documents(tmp_path):
    long_doc = Document("long", " ".join(["filler"] * 100 + ["needle"]))
    docs = DOCS + [long_doc]
    exact = BM25.build(docs, tmp_path / "exact", length_norm="exact", progress=False)
    lossy = BM25.build(docs, tmp_path / "lucene", progress=False)
    e, l = dict(exact.search("needle cat")), dict(lossy.search("needle cat"))
    assert e["d1"] == pytest.approx(l["d1"])  # short docs: Lucene's encoding is exact below 24 tokens
    assert l["long"] > e["long"]  # 101 tokens are decoded as 96: a shorter length, a higher score


def test_run_over_queries_and_pipeline_cutoff(bm25):
    queries = Queries({"q1": "cat", "q2": "finance markets", "q3": "the and", "q4": "zebra"})
    run = bm25(queries)
    assert isinstance(run, Run) and list(run) == ["q1", "q2", "q3", "q4"]
    assert run.ids("q2") == ["d4"]
    assert len(run["q3"].docnos) == 0 and len(run["q4"].docnos) == 0  # stopwords only / unknown term
    top1 = (bm25 % 1)(queries)
    assert all(len(top1[q].docnos) <= 1 for q in top1)
    assert top1.ids("q1") == run.ids("q1")[:1]


def test_settings_and_documents_are_recorded(bm25, tmp_path):
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["settings"]["k1"] == 0.9 and manifest["settings"]["b"] == 0.4
    assert manifest["settings"]["metadata"]["analyzer"] == Analyzer().config()
    reopened = BM25(tmp_path / "idx")
    assert reopened.analyzer == Analyzer()
    assert reopened.document("d2") == DOCS[1]
    with pytest.raises(KeyError, match="unknown document id 'zz'"):
        reopened.document("zz")


def test_bad_input(tmp_path, bm25):
    with pytest.raises(InputError, match="empty query"):
        bm25.search("   ")
    with pytest.raises(InputError, match="already holds an index"):
        BM25.build(DOCS, tmp_path / "idx")
    with pytest.raises(IndexFormatError, match="not an index directory"):
        BM25(tmp_path / "missing")
    corpus = tmp_path / "dup.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n{"_id": "a", "text": "z"}\n')
    with pytest.raises(InputError, match=r"duplicate document id 'a' \(at .*dup.jsonl, line 1 and .*line 3\)"):
        BM25.build(Corpus(corpus), tmp_path / "dup", progress=False)
    assert not (tmp_path / "dup" / "manifest.json").exists()


def test_add_replace_and_delete(bm25):
    bm25.add([Document("d5", "a new cat arrives"), Document("d1", "no felines here anymore")])
    hits = dict(bm25.search("cat", k=10))
    assert "d5" in hits and "d1" not in hits  # d1 was replaced by a version without "cat"
    assert "d1" in dict(bm25.search("felines"))
    bm25.delete(["d2", "unknown-id"])
    assert "d2" not in dict(bm25.search("cat dog", k=10))
    assert len(bm25.index) == 4


def test_scifact_ndcg_matches_anserini(tmp_path):
    """BM25 flat on SciFact: Anserini reports nDCG@10 = 0.6789."""
    from rankstack.data import datasets
    from rankstack.evaluate import evaluate

    ds = datasets.load("beir/scifact")
    bm25 = BM25.build(ds.corpus, tmp_path / "scifact", progress=False, k=100)
    run = bm25(ds.queries)
    result = evaluate(run, ds.qrels, ["nDCG@10", "R@100"]).aggregate
    assert abs(result["nDCG@10"] - 0.6789) < 0.005
    assert result["R@100"] > 0.9


def test_k1_and_b_chosen_per_search_score_as_a_fresh_build(bm25, tmp_path):
    """The stored lengths allow any k1 and b (Pyserini's set_bm25): the same scores as an index built with them."""
    queries = Queries({"q1": "cat", "q2": "dog cat mat"})
    rebuilt = BM25.build(DOCS, tmp_path / "idx-12", k1=1.2, b=0.75, length_norm="exact", progress=False)
    per_search = BM25(bm25.index, k1=1.2, b=0.75)
    for qid in queries:
        assert per_search(queries).hits(qid) == rebuilt(queries).hits(qid)
    assert per_search(queries).hits("q2") != bm25(queries).hits("q2")
    assert "k1=1.2" in repr(per_search) and "b=0.75" in repr(per_search)
    with pytest.raises(InputError, match="k1"):
        BM25(bm25.index, k1=-1)
