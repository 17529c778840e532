import json

import numpy as np
import pytest

from rankstack.encoders import InferenceFreeSparseEncoder
from rankstack.errors import InputError

from .conftest import SHORT, TEXTS

QUERIES = ["vitamin D and bone density", "Does smoking cause lung cancer? cancer!"]


@pytest.fixture(scope="module")
def encoder(splade_dir):
    return InferenceFreeSparseEncoder(splade_dir, device="cpu", progress=False)


def token_ids(tok, text):
    return sorted(set(tok(text, add_special_tokens=False)["input_ids"]))


def test_query_weights_are_idf(encoder):
    table = encoder.fit_idf(TEXTS)
    n, tok = len(TEXTS), encoder.tokenizer
    q = encoder.encode_queries(QUERIES)
    for i, text in enumerate(QUERIES):
        ids = token_ids(tok, text)
        row = q.getrow(i)
        assert row.indices.tolist() == ids  # each distinct token once, no [CLS]/[SEP]
        for j, w in zip(row.indices, row.data):
            df = sum(j in set(tok(t, add_special_tokens=False)["input_ids"]) for t in TEXTS)
            assert w == pytest.approx(np.log1p((n - df + 0.5) / (df + 0.5)), rel=1e-6)
    assert table["cancer"] == pytest.approx(encoder.idf[tok.convert_tokens_to_ids("cancer")])


def test_uniform_weights_without_table(splade_dir):
    enc = InferenceFreeSparseEncoder(splade_dir, device="cpu", progress=False)
    assert enc.idf is None
    q = enc.encode_queries(QUERIES[:1], output="dict")[0]
    assert q == {t: 1.0 for t in enc.tokenizer.convert_ids_to_tokens(token_ids(enc.tokenizer, QUERIES[0]))}


def test_idf_json_round_trip_and_missing_tokens(encoder, splade_dir, tmp_path):
    encoder.fit_idf(TEXTS)
    path = tmp_path / "idf.json"
    encoder.save_idf(path)
    loaded = InferenceFreeSparseEncoder(splade_dir, idf=path, device="cpu", progress=False)
    assert (loaded.encode_queries(QUERIES) != encoder.encode_queries(QUERIES)).nnz == 0
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"vitamin": 2.5, "bone": 1.5}))
    q = InferenceFreeSparseEncoder(splade_dir, idf=small, device="cpu", progress=False).encode_queries(QUERIES[:1], output="dict")
    assert q == [{"vitamin": 2.5, "bone": 1.5}]  # tokens missing from a table weigh 0 and are left out
    small.write_text("[1, 2]")
    with pytest.raises(InputError):
        InferenceFreeSparseEncoder(splade_dir, idf=small, device="cpu")


def test_documents_are_splade(encoder, splade):
    docs = encoder.encode_documents(SHORT)
    assert np.abs(docs - splade.encode_documents(SHORT)).max() < 1e-5
    assert docs.getnnz(axis=1).max() < 0.05 * docs.shape[1]  # sparse
    info = encoder.model_info()
    assert info["encoder"] == "inference-free-sparse" and info["dimension"] == 30522
    with pytest.raises(InputError):
        encoder.encode_queries([""])
