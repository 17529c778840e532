"""CrossEncoder(dtype="int8"): scores close to fp32's, told apart in the stage's info and its score cache."""

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.rerank import CrossEncoder

from .conftest import make_pairs


def test_int8_scores_agree_with_fp32(plain_dir):
    pairs = make_pairs(40)
    exact = CrossEncoder(plain_dir, device="cpu", max_length=64, cache=False, progress=False)
    quantized = CrossEncoder(plain_dir, device="cpu", max_length=64, dtype="int8", cache=False, progress=False)
    a, b = exact.predict(pairs), quantized.predict(pairs)
    # Random weights: the scores mean nothing, but int8 must order the pairs nearly as fp32 does.
    assert np.corrcoef(a, b)[0, 1] > 0.7  # (random weights spread the scores little: 0.82 measured)
    assert not np.allclose(a, b, atol=1e-6)  # it is not the fp32 model
    assert exact.info()["dtype"] == "float32" and quantized.info()["dtype"] == "int8"
    assert "dtype='int8'" in repr(quantized)


def test_int8_has_its_own_cache_entries(plain_dir):
    pairs = make_pairs(6)
    exact = CrossEncoder(plain_dir, device="cpu", max_length=64, progress=False)
    quantized = CrossEncoder(plain_dir, device="cpu", max_length=64, dtype="int8", progress=False)
    assert exact.cache.key(*pairs[0]) != quantized.cache.key(*pairs[0])


def test_int8_refused_off_the_cpu(plain_dir):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        with pytest.raises(InputError, match="CPU option"):
            CrossEncoder(plain_dir, device="cuda", dtype="int8", progress=False)
    with pytest.raises(InputError, match="dtype"):
        CrossEncoder(plain_dir, device="cpu", dtype="int4", progress=False)
