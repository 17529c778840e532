"""CrossEncoder on CPU in reduced precision (dtype="int8" or "bf16"): scores close to fp32's, told apart in the
stage's info and its score cache."""

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.rerank import CrossEncoder

from .conftest import make_pairs


# dtype, what its info says, least correlation with fp32 on random weights (measured: int8 0.80-0.82, bf16 0.97)
REDUCED = [("int8", "int8", 0.7), ("bf16", "bfloat16", 0.9)]


@pytest.mark.parametrize("dtype,recorded,least_correlation", REDUCED)
def test_reduced_precision_scores_agree_with_fp32(plain_dir, dtype, recorded, least_correlation):
    pairs = make_pairs(40)
    exact = CrossEncoder(plain_dir, device="cpu", max_length=64, cache=False, progress=False)
    reduced = CrossEncoder(plain_dir, device="cpu", max_length=64, dtype=dtype, cache=False, progress=False)
    a, b = exact.predict(pairs), reduced.predict(pairs)
    # Random weights: the scores mean nothing (and spread little), but the pairs must be ordered nearly as in fp32.
    assert np.corrcoef(a, b)[0, 1] > least_correlation
    assert not np.allclose(a, b, atol=1e-6)  # it is not the fp32 model
    assert exact.info()["dtype"] == "float32" and reduced.info()["dtype"] == recorded
    assert f"dtype='{dtype}'" in repr(reduced)


@pytest.mark.parametrize("dtype", [d for d, _, _ in REDUCED])
def test_reduced_precision_has_its_own_cache_entries(plain_dir, dtype):
    pairs = make_pairs(6)
    exact = CrossEncoder(plain_dir, device="cpu", max_length=64, progress=False)
    reduced = CrossEncoder(plain_dir, device="cpu", max_length=64, dtype=dtype, progress=False)
    assert exact.cache.key(*pairs[0]) != reduced.cache.key(*pairs[0])


def test_int8_refused_off_the_cpu(plain_dir):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        with pytest.raises(InputError, match="CPU option"):
            CrossEncoder(plain_dir, device="cuda", dtype="int8", progress=False)
    with pytest.raises(InputError, match="dtype"):
        CrossEncoder(plain_dir, device="cpu", dtype="int4", progress=False)
