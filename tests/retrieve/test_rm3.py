import pytest

from rankstack import BM25, Analyzer, Document, Queries
from rankstack.errors import InputError
from rankstack.retrieve.rm3 import RM3

DOCS = [Document("a", "apple banana apple"), Document("b", "apple cherry"), Document("c", "durian"),
        Document("d", "cherry cherry fig")]


def test_expansion_by_hand(tmp_path):
    bm25 = BM25.build(DOCS, tmp_path / "i", analyzer=Analyzer(stemmer="none"), length_norm="exact", progress=False)
    rm3 = RM3(bm25, fb_docs=2, fb_terms=2, original_weight=0.5)
    (sa, sb) = [s for _, s in bm25.search("apple", k=2)]
    # P(t|R) before pruning: apple = sa*2/3 + sb/2, banana = sa/3, cherry = sb/2; keep the top 2
    model = {"apple": sa * 2 / 3 + sb / 2, "banana": sa / 3, "cherry": sb / 2}
    top = dict(sorted(model.items(), key=lambda kv: -kv[1])[:2])
    total = sum(top.values())
    expected = {t: 0.5 * w / total for t, w in top.items()}
    expected["apple"] += 0.5
    assert rm3.expand("apple") == pytest.approx(expected)
    assert sum(rm3.expand("apple").values()) == pytest.approx(1.0)
    run = rm3(Queries({"q": "apple", "empty": "the"}))
    assert set(run.ids("q")) >= {"a", "b"} and len(run["empty"].docnos) == 0


def test_needs_stored_documents(tmp_path):
    bm25 = BM25.build(DOCS, tmp_path / "i", store=False, progress=False)
    with pytest.raises(InputError, match="store=False"):
        RM3(bm25)
