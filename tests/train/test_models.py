"""Trained models load in sentence-transformers and in rankstack's stages, and give the same scores (< 1e-4) as
each other and as the model did in training (tiny random models: mechanics only)."""

import numpy as np
import pytest
import torch

from rankstack.errors import InputError
from rankstack.train.examples import Example
from rankstack.train.models import build_model
from rankstack.train.objectives import Objective
from rankstack.train.trainer import TrainingArguments, train
from tests.train.conftest import DOCS, QRELS, QUERIES

TEXTS = list(DOCS.values()) + ["Hello, world! (punctuation; everywhere...)", "word " * 300]
PAIRS = [(q, d) for q in QUERIES.values() for d in list(DOCS.values())[:3]] + [("long " * 200, "short doc")]


def _examples():
    return [Example(q, QUERIES[q], d, [x for x in DOCS if x not in QRELS[q]][:3]) for q in QRELS
            for d, r in QRELS[q].items() if r]


def _trained(kind, start, tmp_path, **options):
    """A model of `kind` after two optimizer steps (so that its weights differ from the start), saved."""
    from rankstack.rerank.texts import CorpusTexts
    from rankstack.data.corpus import Document

    model = build_model(kind, start, **options)
    texts = CorpusTexts([Document(i, t) for i, t in DOCS.items()])
    train(model, _examples(), texts, Objective("infonce", negatives=1),
          TrainingArguments(batch_size=4, max_steps=2, learning_rate=1e-3, progress=False), tmp_path / kind)
    return model, tmp_path / kind


def test_cross_encoder_scores_match(tiny_base, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from rankstack.rerank.cross_encoder import CrossEncoder

    model, path = _trained("cross-encoder", tiny_base, tmp_path, max_length=64)
    ours = CrossEncoder(path, device="cpu", cache=False, progress=False).predict(PAIRS)
    theirs = st.CrossEncoder(str(path), device="cpu").predict(PAIRS, show_progress_bar=False)
    with torch.inference_mode():
        trained = torch.sigmoid(model.score_pairs(PAIRS)).numpy()
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(ours - trained).max() < 1e-4
    assert (path / "README.md").exists() is False  # the card is the recipe's job; train() writes training.json
    assert (path / "training.json").exists()


def test_dense_vectors_match(tiny_base, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from rankstack.encoders import DenseEncoder

    model, path = _trained("dense", tiny_base, tmp_path, normalize=True)
    ours = DenseEncoder(path, device="cpu", progress=False).encode_documents(TEXTS)
    theirs = st.SentenceTransformer(str(path), device="cpu").encode(TEXTS, show_progress_bar=False)
    with torch.inference_mode():
        trained = model.encode_documents(TEXTS).numpy()
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(ours - trained).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_splade_vectors_match(tiny_mlm, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from rankstack.encoders import SpladeEncoder

    model, path = _trained("splade", tiny_mlm, tmp_path)
    ours = SpladeEncoder(path, device="cpu", progress=False).encode_documents(TEXTS).toarray()
    theirs = st.SparseEncoder(str(path), device="cpu").encode(TEXTS, convert_to_tensor=True).to_dense().numpy()
    with torch.inference_mode():
        trained = model.encode_documents(TEXTS).numpy()
    assert ours.shape == theirs.shape == trained.shape
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(ours - trained).max() < 1e-4
    assert (ours > 0).sum() > 0


def test_colbert_vectors_match(tiny_base, tmp_path):
    from rankstack.encoders import MultiVectorEncoder

    model, path = _trained("colbert", tiny_base, tmp_path, dimension=16, query_length=12, document_max_length=40)
    enc = MultiVectorEncoder(path, query_length=12, document_max_length=40, device="cpu", progress=False)
    assert enc.dimension == 16
    docs, queries = enc.encode_documents(TEXTS), enc.encode_queries(list(QUERIES.values()))
    with torch.inference_mode():
        d_vec, d_mask = model.encode_documents(TEXTS)
        q_vec, q_mask = model.encode_queries(list(QUERIES.values()))
        scores = model.similarity((q_vec, q_mask), (d_vec, d_mask)).numpy()
    for i, ours in enumerate(docs):
        assert np.abs(ours - d_vec[i][d_mask[i]].numpy()).max() < 1e-4
    for i, ours in enumerate(queries):
        assert np.abs(ours - q_vec[i].numpy()).max() < 1e-4
    maxsim = np.array([[(q @ d.T).max(1).sum() for d in docs] for q in queries])
    assert np.abs(maxsim - scores).max() < 1e-4
    assert len(docs[-2]) < len(enc.loaded.tokenize([TEXTS[-2]])[0])  # punctuation dropped


def test_build_model_rejects_unknown_kinds_and_options(tiny_base):
    with pytest.raises(InputError, match="unknown model kind"):
        build_model("t5", tiny_base)
    with pytest.raises(InputError, match="bad options"):
        build_model("dense", tiny_base, dimension=3)
