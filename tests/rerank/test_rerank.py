"""The CrossEncoder as a second stage: reordering, depth, every candidate kept once, cache, repr."""

import numpy as np
import pytest

from rankstack import BM25, Document, Queries, Run
from rankstack.data.corpus import write_corpus_jsonl
from rankstack.errors import InputError
from rankstack.pipeline.config import parse
from rankstack.rerank import CorpusTexts, CrossEncoder, IndexTexts

DOCS = [Document(f"d{i}", text) for i, text in enumerate([
    "A flea can live up to a year, depending on hosts.", "The flea life cycle: egg, larva, pupa and adult.",
    "Cats sleep for most of the day.", "Flea eggs hatch in two to six days in warm, humid weather.",
    "Dog food brands compared.", "Pest control for fleas in homes and gardens, step by step.",
    "The weather in Berlin.", "Adult fleas feed on blood."])]
TEXTS = {d.id: d.contents for d in DOCS}
QUERIES = Queries({"q1": "how long is the life cycle of a flea", "q2": "empty candidates", "q3": "not in the run",
                   "q4": "flea eggs"})
RUN = Run.from_dict({"q1": {f"d{i}": 10.0 - i for i in range(8)}, "q2": {},
                     "q4": {"d3": 2.0, "d1": 1.0, "d7": 0.5}, "q9": {"d0": 1.0}})


class Calls:
    """Counts the model's forward calls."""

    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(self._count)

    def _count(self, *_):
        self.calls += 1


@pytest.fixture
def ce(plain_dir):
    return CrossEncoder(plain_dir, CorpusTexts(DOCS), depth=5, device="cpu", max_length=64, batch_size=4,
                        progress=False)


def test_rerank_orders_by_score_and_respects_depth(ce):
    out = ce(QUERIES, RUN)
    assert list(out) == ["q1", "q2", "q3", "q4"]  # the queries given; q9 has no query text, q3 no candidates
    ids = out.ids("q1")
    assert sorted(ids) == sorted(RUN.ids("q1")) and len(set(ids)) == len(ids)  # every candidate exactly once
    head = RUN.ids("q1")[:5]
    expected = ce.predict([(QUERIES["q1"], TEXTS[d]) for d in head])
    assert ids[:5] == [head[i] for i in np.argsort(-expected, kind="stable")]
    assert ids[5:] == ["d5", "d6", "d7"]  # the tail keeps its order, below
    scores = out["q1"].scores
    assert np.all(np.diff(scores) <= 0)
    assert np.allclose(np.sort(scores[:5])[::-1], np.sort(expected)[::-1], atol=1e-6)
    assert len(out["q2"].docnos) == 0 and len(out["q3"].docnos) == 0
    assert set(out.ids("q4")) == {"d3", "d1", "d7"}


def test_depth_none_reranks_everything(plain_dir):
    ce = CrossEncoder(plain_dir, CorpusTexts(DOCS), depth=None, device="cpu", max_length=64, progress=False)
    out = ce(Queries({"q1": QUERIES["q1"]}), RUN)
    expected = ce.predict([(QUERIES["q1"], TEXTS[d]) for d in RUN.ids("q1")])
    assert np.allclose(out["q1"].scores, np.sort(expected)[::-1], atol=1e-6)


def test_cache_hit_on_rerun(ce, tmp_path):
    calls = Calls(ce.model)
    first = ce(QUERIES, RUN)
    assert calls.calls > 0
    before = calls.calls
    second = ce(QUERIES, RUN)
    assert calls.calls == before  # every pair came from the cache
    assert second.to_dict() == first.to_dict()
    ce.clear_cache()
    ce(QUERIES, RUN)
    assert calls.calls > before


def test_sqlite_cache_shared_across_instances(plain_dir, tmp_path):
    def make():
        return CrossEncoder(plain_dir, CorpusTexts(DOCS), device="cpu", max_length=64, cache=tmp_path / "scores.db",
                            progress=False)
    a = make()
    scores = a.predict([("flea", TEXTS["d0"]), ("flea", TEXTS["d1"]), ("flea", TEXTS["d0"])])
    assert scores[0] == scores[2]
    b = make()
    calls = Calls(b.model)
    assert np.array_equal(b.predict([("flea", TEXTS["d1"]), ("flea", TEXTS["d0"])]), scores[[1, 0]])
    assert calls.calls == 0
    c = CrossEncoder(plain_dir, CorpusTexts(DOCS), device="cpu", max_length=32, cache=tmp_path / "scores.db",
                     progress=False)  # another max_length is another model key: no stale scores
    calls = Calls(c.model)
    c.predict([("flea", TEXTS["d0"])])
    assert calls.calls == 1

def test_stopped_reranking_keeps_the_batches_it_scored(plain_dir, tmp_path):
    def make():
        return CrossEncoder(plain_dir, CorpusTexts(DOCS), device="cpu", max_length=64, batch_size=2,
                            cache=tmp_path / "scores.db", progress=False)
    pairs = [("flea", TEXTS[f"d{i}"]) for i in range(8)]
    expected = make().predict(pairs)
    (tmp_path / "scores.db").unlink()
    stopped = make()

    def fail_on_third_batch(*_):
        fail_on_third_batch.calls += 1
        if fail_on_third_batch.calls == 3:
            raise KeyboardInterrupt
    fail_on_third_batch.calls = 0
    stopped.model.register_forward_hook(fail_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        stopped.predict(pairs)
    resumed = make()
    calls = Calls(resumed.model)
    assert np.allclose(resumed.predict(pairs), expected, atol=1e-6)
    assert calls.calls == 2  # the two batches scored before the stop came from the file: 2 of 4 batches left


def test_repr_rebuilds(plain_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus_jsonl(DOCS, corpus)
    ce = CrossEncoder(plain_dir, corpus, depth=3, device="cpu", max_length=64, progress=False)
    assert repr(ce) == (f"CrossEncoder(model={str(plain_dir)!r}, texts={str(corpus)!r}, depth=3, max_length=64, "
                        "device='cpu')")
    again = parse(repr(ce))
    assert isinstance(again, CrossEncoder) and again.config() == ce.config()
    assert again(QUERIES, RUN).to_dict() == ce(QUERIES, RUN).to_dict()


def test_errors(plain_dir):
    ce = CrossEncoder(plain_dir, device="cpu", max_length=64, progress=False)
    with pytest.raises(InputError, match="texts"):
        ce(QUERIES, RUN)
    with pytest.raises(InputError, match="second stage"):
        ce(QUERIES)
    missing = CrossEncoder(plain_dir, CorpusTexts(DOCS[:2]), device="cpu", max_length=64, progress=False)
    with pytest.raises(InputError, match="'d2'"):
        missing(QUERIES, RUN)


def test_pipeline_over_bm25(plain_dir, tmp_path):
    """bm25 % 4 >> reranker, with texts read from the index's stored documents."""
    bm25 = BM25.build(DOCS, tmp_path / "idx", progress=False)
    ce = CrossEncoder(plain_dir, IndexTexts(bm25), device="cpu", max_length=64, progress=False)
    queries = Queries({"q": "flea life cycle"})
    first = (bm25 % 4)(queries)
    out = (bm25 % 4 >> ce)(queries)
    assert sorted(out.ids("q")) == sorted(first.ids("q")) and len(first.ids("q")) == 4
    expected = ce.predict([("flea life cycle", TEXTS[d]) for d in first.ids("q")])
    assert np.allclose(out["q"].scores, np.sort(expected)[::-1], atol=1e-6)
    assert repr(bm25 % 4 >> ce).endswith(f"% 4 >> CrossEncoder(model={str(plain_dir)!r}, "
                                         f"texts={str(bm25.index.path)!r}, max_length=64, device='cpu')")
