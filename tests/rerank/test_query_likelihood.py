"""QueryLikelihood: scores equal the model's own teacher-forced loss per pair, whatever the batching; document-side
truncation; the stage contract (depth, order, every candidate once, cache, repr). Model names (package:, .gguf):
tests/encoders/test_names.py."""

import numpy as np
import pytest

from rankstack import Document, Queries, Run
from rankstack.errors import InputError
from rankstack.pipeline.config import parse
from rankstack.rerank import CorpusTexts
from tests.rerank.conftest import make_pairs
from tests.rerank.lm_models import llama_dir, t5_dir  # noqa: F401 (fixtures)

torch = pytest.importorskip("torch")
from rankstack.rerank.query_likelihood import QueryLikelihood

DOCS = [Document(f"d{i}", text) for i, text in enumerate([
    "A flea can live up to a year, depending on hosts.", "The flea life cycle: egg, larva, pupa and adult.",
    "Cats sleep for most of the day.", "Flea eggs hatch in two to six days in warm, humid weather.",
    "Dog food brands compared.", "Pest control for fleas in homes and gardens, step by step."])]
TEXTS = {d.id: d.contents for d in DOCS}
QUERIES = Queries({"q1": "how long is the life cycle of a flea", "q2": "flea eggs", "q3": "no candidates"})
RUN = Run.from_dict({"q1": {f"d{i}": 10.0 - i for i in range(6)}, "q2": {"d3": 2.0, "d1": 1.0, "d4": 0.5}})


@pytest.fixture(params=["llama", "t5"])
def model_dir(request, llama_dir, t5_dir):  # noqa: F811
    return llama_dir if request.param == "llama" else t5_dir


def reference(ql: QueryLikelihood, pair) -> float:
    """-loss of the model on this one pair, unpadded, computed by transformers itself (labels = the query)."""
    prompt, target = ql.encode([pair])[0]
    if ql.seq2seq:
        out = ql.model(input_ids=torch.tensor([prompt]), labels=torch.tensor([target]))
    else:
        labels = [-100] * len(prompt) + target
        out = ql.model(input_ids=torch.tensor([prompt + target]), labels=torch.tensor([labels]))
    return -float(out.loss)


def test_scores_equal_the_models_loss_per_pair(model_dir):
    ql = QueryLikelihood(model_dir, max_length=96, batch_size=5, cache=False, progress=False, threads=1)
    pairs = make_pairs(20)[:-2]  # the conftest's last pairs have a query longer than max_length
    scores = ql.predict(pairs)
    with torch.inference_mode():
        expected = np.array([reference(ql, p) for p in pairs])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert len(set(np.round(scores, 4))) > len(pairs) // 2  # the scores depend on the pair


def test_no_pairs_give_no_scores(llama_dir):  # noqa: F811
    ql = QueryLikelihood(llama_dir, cache=False, progress=False, threads=1)
    assert ql.encode([]) == []
    assert ql.predict([]).shape == (0,)


def test_tokens_are_the_prompt_and_the_query(llama_dir, t5_dir):  # noqa: F811
    for folder in (llama_dir, t5_dir):
        ql = QueryLikelihood(folder, template="Passage: {document} Question:", cache=False, progress=False, threads=1)
        prompt, target = ql.encode([("flea eggs", "Adult fleas feed on blood.")])[0]
        tok = ql.tokenizer
        assert prompt == tok("Passage: Adult fleas feed on blood. Question:").input_ids
        assert target == (tok("flea eggs").input_ids if ql.seq2seq else
                          tok(" flea eggs", add_special_tokens=False).input_ids)


def test_batching_does_not_change_scores(model_dir):
    pairs = make_pairs(18)[:-2]
    one = QueryLikelihood(model_dir, max_length=80, batch_size=1, cache=False, progress=False, threads=1).predict(pairs)
    for kwargs in ({"batch_size": 7}, {"batch_size": 32, "token_budget": 100}):
        many = QueryLikelihood(model_dir, max_length=80, cache=False, progress=False, **kwargs).predict(pairs)
        np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-5)


def test_long_documents_lose_their_end_only(model_dir):
    ql = QueryLikelihood(model_dir, max_length=48, cache=False, progress=False, threads=1)
    query, long_doc = "flea life cycle", " ".join(["the flea lays eggs on its host"] * 40)
    prompt, target = ql.encode([(query, long_doc)])[0]
    limit = 48 if ql.seq2seq else 48 - len(target)
    assert len(prompt) <= limit and len(prompt) >= limit - 3  # filled up to the limit (a word may not split)
    assert prompt[-3:] == ql.encode([(query, "x")])[0][0][-3:]  # the prompt's end is kept
    longer = ql.predict([(query, long_doc), (query, long_doc + " and much more text after the cut")])
    assert longer[0] == pytest.approx(longer[1], abs=1e-6)
    assert ql.encode([(query, long_doc)])[0][1] == target  # the query is never cut


def test_rerank_stage_contract(llama_dir):  # noqa: F811
    ql = QueryLikelihood(llama_dir, CorpusTexts(DOCS), depth=4, progress=False, threads=1)
    out = ql(QUERIES, RUN)
    assert out.name == "QueryLikelihood" and list(out) == ["q1", "q2", "q3"]
    ids = out.ids("q1")
    assert sorted(ids) == sorted(RUN.ids("q1")) and len(set(ids)) == len(ids)
    head = RUN.ids("q1")[:4]
    expected = ql.predict([(QUERIES["q1"], TEXTS[d]) for d in head])
    assert ids[:4] == [head[i] for i in np.argsort(-expected, kind="stable")]
    assert ids[4:] == ["d4", "d5"]  # below depth: former order, below the reranked ones
    assert np.all(np.diff(out["q1"].scores) <= 0)
    assert len(out["q3"].docnos) == 0


def test_cache_scores_each_pair_once(llama_dir, tmp_path):  # noqa: F811
    ql = QueryLikelihood(llama_dir, CorpusTexts(DOCS), cache=tmp_path / "scores.sqlite", progress=False, threads=1)
    calls = []
    ql.model.register_forward_hook(lambda *_: calls.append(1))
    first = ql(QUERIES, RUN)
    n = len(calls)
    assert n > 0
    ql.clear_cache()
    second = ql(QUERIES, RUN)  # read back from SQLite
    assert len(calls) == n and second.to_dict() == first.to_dict()


def test_repr_rebuilds_the_stage(llama_dir, tmp_path):  # noqa: F811
    corpus = tmp_path / "docs.jsonl"
    from rankstack.data.corpus import write_corpus_jsonl
    write_corpus_jsonl(DOCS, corpus)
    ql = QueryLikelihood(llama_dir, corpus, depth=3, template="Doc: {document} Query:", progress=False, threads=1)
    again = parse(repr(ql))
    assert isinstance(again, QueryLikelihood) and repr(again) == repr(ql)
    assert again(QUERIES, RUN).to_dict() == ql(QUERIES, RUN).to_dict()


def test_bad_input_is_named(llama_dir):  # noqa: F811
    with pytest.raises(InputError, match="document"):
        QueryLikelihood(llama_dir, template="Passage: {passage}")
    with pytest.raises(InputError, match="depth"):
        QueryLikelihood(llama_dir, depth=0)
    with pytest.raises(InputError, match="chat template"):
        QueryLikelihood(llama_dir, chat=True)
    ql = QueryLikelihood(llama_dir, max_length=16, cache=False, progress=False, threads=1)
    with pytest.raises(InputError, match="max_length"):
        ql.predict([("a very long query " * 10, "doc")])
    with pytest.raises(InputError, match="no tokens"):
        ql.predict([("", "doc")])
    with pytest.raises(InputError, match="texts"):
        ql(QUERIES, RUN)


