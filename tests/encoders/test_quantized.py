"""dtype="int8" (dynamic quantisation of the Linear layers, CPU): close to fp32, told apart by the record, refused
where it cannot run."""

import numpy as np
import pytest
import torch

from rankstack.encoders.loading import quantization
from rankstack.errors import InputError
from rankstack.records import check_compatible

from .conftest import SHORT


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def dense_int8(minilm_dir):
    from rankstack.encoders import DenseEncoder
    return DenseEncoder(minilm_dir, device="cpu", dtype="int8", batch_size=2, progress=False)


def test_dense_int8_is_close_to_fp32_and_recorded(dense, dense_int8):
    exact, quantized = dense.encode_documents(SHORT), dense_int8.encode_documents(SHORT)
    cos = _cosines(exact, quantized)
    # Close (int8 activations per batch: a one-word text moves most), and not the fp32 model itself.
    assert cos.min() > 0.9 and cos.mean() > 0.97 and np.abs(exact - quantized).max() > 1e-4
    assert quantized.dtype == np.float32 and quantized.shape == exact.shape
    # The linear layers really are quantised; the embeddings are not.
    modules = list(dense_int8.loaded.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in modules)
    assert dense.to_record()["dtype"] == "float32" and dense_int8.to_record()["dtype"] == "int8"
    assert not dense_int8.loaded.exact and dense.loaded.exact
    # The same model and settings: an int8 query encoder may search an fp32 index (as fp16 may), the record tells.
    check_compatible(dense.to_record(), dense_int8.to_record())
    assert "dtype='int8'" in repr(dense_int8)


def test_dense_int8_repr_rebuilds(dense_int8):
    from rankstack.pipeline.config import parse
    from rankstack import Document
    from rankstack.rerank.texts import CorpusTexts
    # An encoder is rebuilt inside the stage that holds it (parse builds stages).
    texts = CorpusTexts([Document("d", "bone density")])
    stage = parse(f"BiEncoder({dense_int8!r}, texts=texts)", {"texts": texts})
    again = stage.encoder
    assert again.loaded.quantized == "int8" and again.to_record() == dense_int8.to_record()
    np.testing.assert_array_equal(again.encode_queries(["bone density"]), dense_int8.encode_queries(["bone density"]))


def test_splade_int8_keeps_the_terms(splade_dir, splade):
    from rankstack.encoders import SpladeEncoder
    quantized = SpladeEncoder(splade_dir, device="cpu", dtype="int8", batch_size=2, progress=False)
    a, b = splade.encode_documents(SHORT).toarray(), quantized.encode_documents(SHORT).toarray()
    assert _cosines(a, b).min() > 0.97
    for x, y in zip(a, b):  # the ten heaviest terms of fp32 are (nearly all) among int8's twenty heaviest
        assert len(set(np.argsort(-x)[:10]) & set(np.argsort(-y)[:20])) >= 8
    assert quantized.to_record()["dtype"] == "int8"


def test_multivector_int8(minilm_dir):
    from rankstack.encoders import MultiVectorEncoder
    exact = MultiVectorEncoder(minilm_dir, projection=None, device="cpu", progress=False)
    quantized = MultiVectorEncoder(minilm_dir, projection=None, device="cpu", dtype="int8", progress=False)
    for x, y in zip(exact.encode_documents(SHORT), quantized.encode_documents(SHORT)):
        assert x.shape == y.shape and np.einsum("ij,ij->i", x, y).min() > 0.9
    assert quantized.to_record()["dtype"] == "int8"


def test_int8_is_a_cpu_option():
    assert quantization("int8", torch.device("cpu")) == "int8"
    assert quantization("INT8", torch.device("cpu")) == "int8"
    assert quantization("fp32", torch.device("cpu")) is None and quantization(None, torch.device("cpu")) is None
    with pytest.raises(InputError, match="CPU option"):
        quantization("int8", torch.device("cuda"))
