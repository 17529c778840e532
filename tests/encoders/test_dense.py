import numpy as np
import pytest
import torch

from rankstack.encoders import DenseEncoder
from rankstack.encoders.batching import plan_batches
from rankstack.errors import InputError

from .conftest import TEXTS


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(minilm_dir), device="cpu")


def test_equals_sentence_transformers_normalized(dense, st_model):
    ours = dense.encode_documents(TEXTS)  # batches of 2 sorted by length: order must come back
    theirs = st_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_equals_sentence_transformers_unnormalized(minilm_dir, st_model):
    from sentence_transformers import SentenceTransformer
    unnormalized = SentenceTransformer(modules=[st_model[0], st_model[1]], device="cpu")  # without Normalize
    enc = DenseEncoder(minilm_dir, device="cpu", normalize=False, batch_size=2, progress=False)
    texts = [t for t in TEXTS if len(t) < 500]
    ours = enc.encode_queries(texts)
    theirs = unnormalized.encode(texts, normalize_embeddings=False, convert_to_numpy=True)
    assert np.abs(ours - theirs).max() < 1e-5
    assert not np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-3)


def test_long_text_is_truncated(dense):
    assert len(dense.loaded.tokenizer(TEXTS[2])["input_ids"]) > 256
    long = dense.encode_documents([TEXTS[2]])
    longer = dense.encode_documents([TEXTS[2] + " more words beyond the limit" * 20])
    assert np.abs(long - longer).max() < 1e-6  # both cut at 256 tokens


def test_prefixes(minilm_dir, dense, st_model):
    e5 = DenseEncoder(minilm_dir, device="cpu", prefixes="e5", progress=False)
    assert (e5.query_prefix, e5.document_prefix) == ("query: ", "passage: ")
    q = e5.encode_queries(TEXTS[:2])
    assert np.abs(q - dense.encode(["query: " + t for t in TEXTS[:2]])).max() < 1e-6
    assert np.abs(q - st_model.encode(TEXTS[:2], prompt="query: ", normalize_embeddings=True)).max() < 1e-5
    own = DenseEncoder(minilm_dir, device="cpu", query_prefix="Represent this: ", progress=False)
    assert own.model_info()["query_prefix"] == "Represent this: "


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_pooling_override(minilm_dir, dense, pooling):
    enc = DenseEncoder(minilm_dir, device="cpu", pooling=pooling, normalize=False, progress=False)
    tok, model = dense.loaded.tokenizer, dense.loaded.model
    with torch.inference_mode():
        f = tok([TEXTS[0], TEXTS[1], TEXTS[3]], padding=True, truncation=True, max_length=256, return_tensors="pt")
        h = model(**f).last_hidden_state
        ref = h[:, 0] if pooling == "cls" else h.masked_fill(f["attention_mask"][..., None] == 0, -1e9).amax(1)
    assert np.abs(enc.encode([TEXTS[0], TEXTS[1], TEXTS[3]]) - ref.numpy()).max() < 1e-5
    assert enc.model_info()["pooling"] == pooling


def test_bad_input(dense, minilm_dir):
    for bad in (["ok", ""], ["   "], "a bare string", ["ok", None]):
        with pytest.raises(InputError):
            dense.encode_documents(bad)
    with pytest.raises(InputError, match="text 1 is empty"):
        dense.encode_queries(["fine", " "])
    assert dense.encode_documents([]).shape == (0, 384)
    with pytest.raises(InputError):
        DenseEncoder(minilm_dir, device="cpu", pooling="median")
    with pytest.raises(InputError):
        DenseEncoder(minilm_dir, device="cpu", prefixes="nope")


def test_plan_batches_budget_and_order():
    lengths = np.array([5, 300, 17, 17, 2, 256, 90, 1, 64])
    batches = plan_batches(lengths, batch_size=4, token_budget=600)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert len(b) <= 4 and len(b) * lengths[b].max() <= 600
    assert all(len(b) == 1 for b in plan_batches(lengths, 4, token_budget=1))
    assert [len(b) for b in plan_batches(lengths, 4, pad_to=300, token_budget=600)] == [2] * 4 + [1]


def test_chunked_tokenization_keeps_order(dense, monkeypatch):
    from rankstack.encoders import batching
    whole = dense.encode_documents(TEXTS)
    monkeypatch.setattr(batching, "CHUNK_TEXTS", 4)  # three chunks of texts, each sorted on its own
    assert np.abs(dense.encode_documents(TEXTS * 2) - np.concatenate([whole, whole])).max() < 1e-5
