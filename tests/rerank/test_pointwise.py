"""Pointwise (monoT5-style): scores equal a direct per-pair forward pass, whatever the batching; answer tokens;
document-side truncation; the stage contract."""

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.pipeline.config import parse
from rankstack.rerank import CorpusTexts
from tests.rerank.conftest import make_pairs
from tests.rerank.lm_models import llama_dir, t5_dir  # noqa: F401 (fixtures)
from tests.rerank.test_query_likelihood import DOCS, QUERIES, RUN, TEXTS

torch = pytest.importorskip("torch")
from rankstack.rerank.pointwise import Pointwise  # noqa: E402


@pytest.fixture(params=["llama", "t5"])
def model_dir(request, llama_dir, t5_dir):  # noqa: F811
    return llama_dir if request.param == "llama" else t5_dir


def reference(pw: Pointwise, pair) -> float:
    """log softmax over (true, false) of one unpadded forward pass, read straight from the model's logits."""
    ids = torch.tensor([pw.encode([pair])[0]])
    if pw.seq2seq:
        logits = pw.model(input_ids=ids, decoder_input_ids=torch.tensor([[pw.model.config.decoder_start_token_id]]))
    else:
        logits = pw.model(input_ids=ids)
    two = logits.logits[0, -1, pw.token_ids]
    return float(two[0] - torch.logsumexp(two, 0))


def test_scores_equal_a_direct_forward_pass(model_dir):
    pw = Pointwise(model_dir, max_length=96, batch_size=6, cache=False, progress=False)
    pairs = make_pairs(20)[:-2]
    scores = pw.predict(pairs)
    with torch.inference_mode():
        expected = np.array([reference(pw, p) for p in pairs])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert np.all(scores < 0) and len(set(np.round(scores, 5))) > len(pairs) // 2


def test_batching_does_not_change_scores(model_dir):
    pairs = make_pairs(24)[:-2]
    one = Pointwise(model_dir, max_length=64, batch_size=1, cache=False, progress=False).predict(pairs)
    many = Pointwise(model_dir, max_length=64, batch_size=32, token_budget=150, cache=False,
                     progress=False).predict(pairs)
    np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-5)


def test_answer_tokens_and_prompt(model_dir):
    pw = Pointwise(model_dir, cache=False, progress=False)
    tok = pw.tokenizer
    assert pw.token_ids == tok.convert_tokens_to_ids(["true", "false"])
    ids = pw.encode([("flea eggs", "Adult fleas feed on blood.")])[0]
    assert ids == tok("Query: flea eggs Document: Adult fleas feed on blood. Relevant:").input_ids
    yes = Pointwise(model_dir, tokens=("yes", "no"), cache=False, progress=False)
    assert yes.token_ids == tok.convert_tokens_to_ids(["yes", "no"])


def test_long_documents_lose_their_end_only(model_dir):
    pw = Pointwise(model_dir, max_length=40, cache=False, progress=False)
    long_doc = " ".join(["fleas lay eggs on the host animal"] * 30)
    ids = pw.encode([("flea eggs", long_doc)])[0]
    assert 36 <= len(ids) <= 40
    assert ids[-3:] == pw.encode([("flea eggs", "x")])[0][-3:]  # "Relevant:" (and specials) kept
    a, b = pw.predict([("flea eggs", long_doc), ("flea eggs", long_doc + " more text past the cut")])
    assert a == pytest.approx(b, abs=1e-6)


def test_rerank_stage_contract_and_repr(llama_dir):  # noqa: F811
    pw = Pointwise(llama_dir, CorpusTexts(DOCS), depth=5, tokens=("yes", "no"), progress=False)
    out = pw(QUERIES, RUN)
    assert out.name == "Pointwise"
    ids = out.ids("q1")
    assert sorted(ids) == sorted(RUN.ids("q1")) and len(set(ids)) == len(ids)
    head = RUN.ids("q1")[:5]
    expected = pw.predict([(QUERIES["q1"], TEXTS[d]) for d in head])
    assert ids[:5] == [head[i] for i in np.argsort(-expected, kind="stable")] and ids[5] == "d5"
    assert "tokens=('yes', 'no')" in repr(pw)
    again = parse(repr(pw).replace("texts=None", "texts=None"))
    assert isinstance(again, Pointwise) and again.token_ids == pw.token_ids


def test_bad_answer_words_are_named(llama_dir):  # noqa: F811
    with pytest.raises(InputError, match="same token"):
        Pointwise(llama_dir, tokens=("true", "true"))
    with pytest.raises(InputError, match="one token"):
        Pointwise(llama_dir, tokens=("flibbertigibbetlike", "false"))
    with pytest.raises(InputError, match="two answer words"):
        Pointwise(llama_dir, tokens="true")
    with pytest.raises(InputError, match="query"):
        Pointwise(llama_dir, template="Document: {document} Relevant:")
