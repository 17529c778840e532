"""compile=True (torch.compile of the model): the same vectors as the eager model for texts of every length and
for a batch of one text, the same record, and a clear refusal where it cannot run. Tiny random models, except
SPLADE-tiny (whose base the encoder calls on its own)."""

import shutil

import numpy as np
import pytest

from rankstack.encoders.loading import cpp_compiler
from rankstack.errors import InputError

from .conftest import TEXTS
from .st_models import build_bert, save_pylate, save_sentence_transformer

#: TorchInductor compiles C++ on a CPU (CI installs g++: .ci/run); without a compiler compile=True is refused
needs_compiler = pytest.mark.skipif(cpp_compiler() is None, reason="no C++ compiler for torch.compile's CPU backend")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile")
    bert = build_bert(root / "bert")
    return save_sentence_transformer(bert, root / "st"), save_pylate(bert, root / "pylate")


@needs_compiler
def test_compiled_dense_and_multivector_encoders_equal_the_eager_ones(tiny_models):
    from rankstack.encoders import DenseEncoder, MultiVectorEncoder

    st, pylate = tiny_models
    eager, compiled = (DenseEncoder(st, device="cpu", batch_size=2, progress=False, compile=c) for c in (False, True))
    assert compiled.loaded.compiled and compiled.loaded.model._compiled_call_impl is not None
    assert not eager.loaded.compiled and eager.loaded.model._compiled_call_impl is None
    np.testing.assert_allclose(compiled.encode_documents(TEXTS), eager.encode_documents(TEXTS), atol=1e-5)
    np.testing.assert_allclose(compiled.encode_queries(["cells"]), eager.encode_queries(["cells"]), atol=1e-5)
    assert compiled.to_record() == eager.to_record() and "compile=True" in repr(compiled)
    assert "compile=" not in repr(eager)

    eager, compiled = (MultiVectorEncoder(pylate, device="cpu", progress=False, compile=c) for c in (False, True))
    for a, b in zip(compiled.encode_documents(TEXTS[:4]), eager.encode_documents(TEXTS[:4])):
        np.testing.assert_allclose(a, b, atol=1e-5)


@needs_compiler
def test_compiled_splade_compiles_the_base_it_calls(splade_dir, splade):
    from rankstack.encoders import SpladeEncoder

    compiled = SpladeEncoder(splade_dir, device="cpu", batch_size=2, logits_budget_mb=8, progress=False,
                             compile=True)
    side = compiled.documents
    assert side.base is not side.lm.model and side.base._compiled_call_impl is not None
    a, b = compiled.encode_documents(TEXTS).toarray(), splade.encode_documents(TEXTS).toarray()
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert ((a > 0) == (b > 0)).mean() > 0.999  # the same terms, but for weights at rounding distance from 0


def test_compile_is_refused_where_it_cannot_run(tiny_models, monkeypatch):
    from rankstack.encoders import DenseEncoder

    st, _ = tiny_models
    with pytest.raises(InputError, match="does not take dtype='int8'"):
        DenseEncoder(st, device="cpu", dtype="int8", compile=True)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs a C\\+\\+ compiler"):
        DenseEncoder(st, device="cpu", compile=True)
