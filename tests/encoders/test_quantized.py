"""Reduced precision on CPU: dtype="int8" (dynamic quantisation of the Linear layers) and dtype="bf16": close to
fp32, told apart by the record, refused where it cannot run, and bf16 flagged where the CPU would emulate it."""

import logging

import numpy as np
import pytest
import torch

from rankstack.devices import _EXTENSIONS, cpu_description, describe_cpuinfo
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


def test_dense_bf16_on_cpu_is_close_to_fp32_and_recorded(minilm_dir, dense):
    from rankstack.encoders import DenseEncoder
    bf16 = DenseEncoder(minilm_dir, device="cpu", dtype="bf16", batch_size=2, progress=False)
    exact, reduced = dense.encode_documents(SHORT), bf16.encode_documents(SHORT)
    cos = _cosines(exact, reduced)
    assert cos.min() > 0.999 and np.abs(exact - reduced).max() > 1e-5  # close, and not the fp32 model itself
    assert reduced.dtype == np.float32 and reduced.shape == exact.shape
    assert next(bf16.loaded.model.parameters()).dtype == torch.bfloat16
    assert bf16.to_record()["dtype"] == "bfloat16" and not bf16.loaded.exact
    check_compatible(dense.to_record(), bf16.to_record())


def test_bf16_warns_on_a_cpu_without_bf16_units(minilm_dir, monkeypatch, caplog):
    from rankstack.encoders import loading
    for has_units, warned in ((False, True), (True, False)):
        monkeypatch.setattr(loading, "cpu_has_bf16_units", lambda: has_units)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rankstack.encoders.loading"):
            loading.load_model(minilm_dir, device="cpu", dtype="bf16")
        assert ("emulated" in caplog.text) is warned
    caplog.clear()
    monkeypatch.setattr(loading, "cpu_has_bf16_units", lambda: False)
    with caplog.at_level(logging.WARNING, logger="rankstack.encoders.loading"):
        loading.load_model(minilm_dir, device="cpu")  # fp32: nothing to say
    assert "emulated" not in caplog.text


def test_cpu_description_names_the_cpu_and_known_extensions():
    cpu = cpu_description()
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert set(cpu["extensions"]) <= set(_EXTENSIONS)
    info = ("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f amx_bf16 sse4_2\n\n"
            "processor\t: 1\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2\n")
    assert describe_cpuinfo(info) == {"model": "Some Xeon", "extensions": ["avx2", "avx512f", "amx_bf16"]}
    assert describe_cpuinfo("")["extensions"] == []
