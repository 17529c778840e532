"""CrossEncoder(compile=True): torch.compile of the model after the [CLS]-only last layer is installed; the same
scores as the eager model, and the option in its repr (a tiny random model: mechanics only)."""

import numpy as np
import pytest

from rankstack.encoders.loading import cpp_compiler
from rankstack.rerank import CrossEncoder

from .conftest import CONFIG_ONLY, build_model, make_pairs


@pytest.mark.skipif(cpp_compiler() is None, reason="no C++ compiler for torch.compile's CPU backend (CI installs "
                    "g++: .ci/run)")
def test_compiled_cross_encoder_scores_as_the_eager_one(tmp_path):
    pytest.importorskip("torch")
    if not CONFIG_ONLY.is_dir():
        pytest.skip(f"model folder not found: {CONFIG_ONLY}")
    model = build_model(tmp_path / "tiny", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64)
    eager, compiled = (CrossEncoder(model, device="cpu", max_length=64, cache=False, progress=False, compile=c)
                       for c in (False, True))
    assert compiled.first_token_last_layer and eager.first_token_last_layer
    assert compiled.model._compiled_call_impl is not None and eager.model._compiled_call_impl is None
    pairs = make_pairs(40)
    np.testing.assert_allclose(compiled.predict(pairs), eager.predict(pairs), atol=1e-5)
    np.testing.assert_allclose(compiled.predict(pairs[:1]), eager.predict(pairs[:1]), atol=1e-5)
    assert "compile=True" in repr(compiled) and "compile=" not in repr(eager)
