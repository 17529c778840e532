"""The CUDA path (background prefetch, side-stream fetch one batch behind, half precision) against the CPU."""

import numpy as np
import pytest
import torch

from rankstack.encoders import DenseEncoder, MultiVectorEncoder, SpladeEncoder

from .conftest import TEXTS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
MANY = [f"{t} {i}" for i, t in enumerate(TEXTS * 40)]  # 240 texts, many batches


def test_dense_cuda_matches_cpu(minilm_dir, dense):
    cpu = dense.encode_documents(MANY)
    fp32 = DenseEncoder(minilm_dir, device="cuda", dtype="fp32", batch_size=8, progress=False)
    assert np.abs(fp32.encode_documents(MANY) - cpu).max() < 1e-4
    fp16 = DenseEncoder(minilm_dir, device="cuda", progress=False)
    assert fp16.loaded.dtype == torch.float16
    cos = (fp16.encode_documents(MANY) * cpu).sum(1)
    assert cos.min() > 0.999


def test_splade_cuda_matches_cpu(splade_dir, splade):
    cpu = splade.encode_documents(MANY[:60]).toarray()
    gpu = SpladeEncoder(splade_dir, device="cuda", dtype="fp32", batch_size=8, logits_budget_mb=4, progress=False)
    assert np.abs(gpu.encode_documents(MANY[:60]).toarray() - cpu).max() < 1e-3
    half = SpladeEncoder(splade_dir, device="cuda", progress=False).encode_documents(MANY[:60]).toarray()
    assert np.abs(half - cpu).max() < 0.05 * cpu.max()


def test_multivector_cuda_matches_cpu(minilm_dir):
    head = np.random.default_rng(0).standard_normal((32, 384)).astype(np.float32)
    cpu = MultiVectorEncoder(minilm_dir, projection=head, device="cpu", progress=False)
    gpu = MultiVectorEncoder(minilm_dir, projection=head, device="cuda", dtype="fp32", batch_size=8, progress=False)
    for a, b in zip(cpu.encode_documents(MANY[:30]), gpu.encode_documents(MANY[:30])):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    for a, b in zip(cpu.encode_queries(MANY[:30]), gpu.encode_queries(MANY[:30])):
        assert a.shape == b.shape == (32, 32) and np.abs(a - b).max() < 1e-4
