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
from rankstack.rerank.pointwise import Pointwise


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
    pw = Pointwise(model_dir, max_length=96, batch_size=6, cache=False, progress=False, threads=1)
    pairs = make_pairs(20)[:-2]
    scores = pw.predict(pairs)
    with torch.inference_mode():
        expected = np.array([reference(pw, p) for p in pairs])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert np.all(scores < 0) and len(set(np.round(scores, 5))) > len(pairs) // 2


def test_batching_does_not_change_scores(model_dir):
    pairs = make_pairs(24)[:-2]
    one = Pointwise(model_dir, max_length=64, batch_size=1, cache=False, progress=False, threads=1).predict(pairs)
    many = Pointwise(model_dir, max_length=64, batch_size=32, token_budget=150, cache=False,
                     progress=False, threads=1).predict(pairs)
    np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-5)


def test_answer_tokens_and_prompt(model_dir):
    pw = Pointwise(model_dir, cache=False, progress=False, threads=1)
    tok = pw.tokenizer
    assert pw.token_ids == tok.convert_tokens_to_ids(["true", "false"])
    ids = pw.encode([("flea eggs", "Adult fleas feed on blood.")])[0]
    assert ids == tok("Query: flea eggs Document: Adult fleas feed on blood. Relevant:").input_ids
    yes = Pointwise(model_dir, tokens=("yes", "no"), cache=False, progress=False, threads=1)
    assert yes.token_ids == tok.convert_tokens_to_ids(["yes", "no"])


def test_long_documents_lose_their_end_only(model_dir):
    pw = Pointwise(model_dir, max_length=40, cache=False, progress=False, threads=1)
    long_doc = " ".join(["fleas lay eggs on the host animal"] * 30)
    ids = pw.encode([("flea eggs", long_doc)])[0]
    assert 36 <= len(ids) <= 40
    assert ids[-3:] == pw.encode([("flea eggs", "x")])[0][-3:]  # "Relevant:" (and specials) kept
    a, b = pw.predict([("flea eggs", long_doc), ("flea eggs", long_doc + " more text past the cut")])
    assert a == pytest.approx(b, abs=1e-6)


def test_rerank_stage_contract_and_repr(llama_dir):  # noqa: F811
    pw = Pointwise(llama_dir, CorpusTexts(DOCS), depth=5, tokens=("yes", "no"), progress=False, threads=1)
    out = pw(QUERIES, RUN)
    assert out.name == "Pointwise"
    ids = out.ids("q1")
    assert sorted(ids) == sorted(RUN.ids("q1")) and len(set(ids)) == len(ids)
    head = RUN.ids("q1")[:5]
    expected = pw.predict([(QUERIES["q1"], TEXTS[d]) for d in head])
    assert ids[:5] == [head[i] for i in np.argsort(-expected, kind="stable")] and ids[5] == "d5"
    assert "tokens=('yes', 'no')" in repr(pw)
    with pytest.raises(InputError, match="corpus held in memory"):  # CorpusTexts(DOCS): no file rebuilds it
        parse(repr(pw))
    again = parse(repr(pw).replace(repr(pw.texts.source), "docs"), stages={"docs": pw.texts})
    assert isinstance(again, Pointwise) and again.token_ids == pw.token_ids and repr(again) == repr(pw)


def test_bad_answer_words_are_named(llama_dir):  # noqa: F811
    with pytest.raises(InputError, match="same token"):
        Pointwise(llama_dir, tokens=("true", "true"))
    with pytest.raises(InputError, match="one token"):
        Pointwise(llama_dir, tokens=("flibbertigibbetlike", "false"))
    with pytest.raises(InputError, match="two answer words"):
        Pointwise(llama_dir, tokens="true")
    with pytest.raises(InputError, match="query"):
        Pointwise(llama_dir, template="Document: {document} Relevant:")


def test_chat_prompts_use_the_template_and_its_special_tokens():
    from transformers import AutoTokenizer

    from rankstack.rerank.llm import Prompter
    from tests.rerank.conftest import CONFIG_ONLY
    from tests.rerank.lm_models import require_models

    require_models()
    tok = AutoTokenizer.from_pretrained(CONFIG_ONLY)
    with pytest.raises(InputError, match="chat template"):
        Prompter(tok, chat=True)
    assert not Prompter(tok, chat=None).chat  # no template: plain prompts
    tok.chat_template = ("{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}"
                         "{% if add_generation_prompt %}[assistant] {% endif %}")
    p = Prompter(tok, chat=None, system="be brief")
    assert p.chat and not Prompter(tok, chat=None, seq2seq=True).chat
    text = p.text("is it relevant?", prefill="[")
    assert text == "[system] be brief [user] is it relevant? [assistant] ["
    assert p.encode([text])[0] == tok(text, add_special_tokens=False).input_ids  # no [CLS]/[SEP] added
    assert p.next_token(p.text("q"), "yes") == tok.convert_tokens_to_ids("yes")
    plain = Prompter(tok, chat=False, system="be brief")
    assert plain.text("q") == "be brief\n\nq" and plain.encode(["q"])[0][0] == tok.cls_token_id
