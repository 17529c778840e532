import numpy as np
import pytest
import scipy.sparse as sp
import torch

from rankstack.encoders import SpladeEncoder
from rankstack.errors import InputError

from .conftest import SHORT, TEXTS


def reference(model_dir, texts, max_length=512):
    """The textbook SPLADE: full log(1 + relu(logits)) over batch x tokens x vocab, then masked max."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        f = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        act = torch.log1p(torch.relu(model(**f).logits)) * f["attention_mask"][..., None]
        return act.amax(1).numpy()


def test_equals_reference(splade, splade_dir):
    ours = splade.encode_documents(TEXTS)  # batches of 2, the head run over 8 MiB slices of the sequence
    assert isinstance(ours, sp.csr_matrix) and ours.shape == (len(TEXTS), 30522) and ours.dtype == np.float32
    ref = reference(splade_dir, TEXTS)
    assert np.abs(ours.toarray() - ref).max() < 1e-5
    assert ours.nnz == (ref > 0).sum()  # the same support, no stored zeros
    assert ours.has_sorted_indices


def test_equals_sentence_transformers_sparse_encoder(splade, splade_dir):
    try:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    except ImportError:
        pytest.skip("this sentence-transformers has no SparseEncoder")
    st = SparseEncoder(modules=[MLMTransformer(str(splade_dir)), SpladePooling("max")], device="cpu")
    theirs = st.encode_document(TEXTS, convert_to_tensor=True).to_dense().numpy()
    assert np.abs(splade.encode_documents(TEXTS).toarray() - theirs).max() < 1e-5


def test_outputs_agree(splade):
    csr = splade.encode_queries(SHORT)
    pairs = splade.encode_queries(SHORT, output="pairs")
    dicts = splade.encode_queries(SHORT, output="dict")
    vocab = splade.vocabulary()
    for i, ((idx, w), d) in enumerate(zip(pairs, dicts)):
        assert idx.dtype == np.int32 and w.dtype == np.float32 and np.all(w > 0)
        row = csr.getrow(i)
        assert np.array_equal(row.indices, idx) and np.allclose(row.data, w)
        assert d == {vocab[j]: pytest.approx(float(x)) for j, x in zip(idx, w)}
    assert "vitamin" in dicts[0]
    with pytest.raises(InputError):
        splade.encode_queries(["x"], output="dense")


def test_top_k_pruning(splade_dir, splade):
    pruned = SpladeEncoder(splade_dir, device="cpu", document_top_k=5, query_top_k=3, progress=False)
    full = splade.encode_documents(SHORT).toarray()
    docs = pruned.encode_documents(SHORT).toarray()
    for row_full, row in zip(full, docs):
        keep = np.argsort(-row_full)[:5]
        assert (row > 0).sum() == min(5, (row_full > 0).sum())
        assert np.allclose(row[keep], row_full[keep])
    assert (pruned.encode_queries(SHORT).getnnz(axis=1) <= 3).all()


def test_query_side_max_length_and_model(splade_dir):
    enc = SpladeEncoder(splade_dir, device="cpu", query_max_length=8, query_model=splade_dir, progress=False)
    long_query = [TEXTS[3]]
    assert np.abs(enc.encode_queries(long_query).toarray() - reference(splade_dir, long_query, 8)).max() < 1e-5
    assert np.abs(enc.encode_documents(long_query).toarray() - reference(splade_dir, long_query)).max() < 1e-5
    info = enc.model_info()
    assert info["query_max_length"] == 8 and info["document_max_length"] == 512
    assert info["query_model"]["content_hash"] == info["content_hash"]


def test_log1p_relu_activation(splade_dir, splade):
    enc = SpladeEncoder(splade_dir, device="cpu", activation="log1p_relu", progress=False)
    assert np.allclose(enc.encode_documents(TEXTS[:2]).toarray(),
                       np.log1p(splade.encode_documents(TEXTS[:2]).toarray()), atol=1e-6)
    with pytest.raises(InputError):
        SpladeEncoder(splade_dir, device="cpu", activation="gelu")


def test_bad_input(splade):
    with pytest.raises(InputError, match="empty"):
        splade.encode_documents(["a", ""])
    assert splade.encode_documents([]).shape == (0, 30522)
