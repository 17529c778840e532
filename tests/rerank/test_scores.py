"""rankstack's cross-encoder scores equal sentence-transformers' CrossEncoder.predict (fp32, CPU)."""

import numpy as np
import pytest
import torch

from rankstack.errors import InputError, RankstackError
from rankstack.rerank import CrossEncoder

from .conftest import build_model, edit_config, make_pairs

PAIRS = make_pairs()


def _ours(folder, **kw) -> CrossEncoder:
    return CrossEncoder(folder, device="cpu", cache=False, progress=False, **kw)


def test_equals_sentence_transformers(plain_dir, st_module):
    ours = _ours(plain_dir, max_length=128, batch_size=8, token_budget=512)
    theirs = st_module.CrossEncoder(str(plain_dir), device="cpu", max_length=128)
    assert ours.first_token_last_layer  # BERT: the last layer runs for [CLS] only
    expected = theirs.predict(PAIRS, batch_size=16)
    got = ours.predict(PAIRS)
    assert got.dtype == np.float32 and got.shape == (len(PAIRS),)
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(ours.predict(PAIRS[::-1]) - expected[::-1]).max() < 1e-4  # order comes back


def test_sentence_transformers_folder_and_model_limit(plain_dir, st_module, tmp_path):
    """A folder saved by sentence-transformers loads alike; at the model's own limit (512), a document of
    thousands of words is truncated, never an error."""
    st_dir = tmp_path / "st"
    st_module.CrossEncoder(str(plain_dir), device="cpu").save(str(st_dir))
    ours = _ours(st_dir)
    assert ours.max_length == 512 and ours.activation_name.endswith("Identity")
    pairs = [("flea life cycle", "flea " * 5000), ("short", "text")]
    expected = st_module.CrossEncoder(str(st_dir), device="cpu").predict(pairs)
    assert np.abs(ours.predict(pairs) - expected).max() < 1e-4


def test_default_activation_is_sigmoid_for_one_label(plain_dir, st_module, tmp_path):
    """Without a saved activation, sentence-transformers applies a sigmoid to a single logit: so do we."""
    bare = build_model(tmp_path / "bare")
    edit_config(bare, sbert_ce_default_activation_function=None)
    ours = _ours(bare, max_length=64)
    assert ours.activation_name.endswith("Sigmoid")
    theirs = st_module.CrossEncoder(str(bare), device="cpu", max_length=64)
    assert isinstance(theirs.activation_fn, torch.nn.Sigmoid)
    got = ours.predict(PAIRS[:12])
    assert np.abs(got - theirs.predict(PAIRS[:12])).max() < 1e-4
    assert ((got > 0) & (got < 1)).all()
    logits = _ours(bare, max_length=64, activation="identity").predict(PAIRS[:12])
    assert np.abs(1 / (1 + np.exp(-logits)) - got).max() < 1e-6


@pytest.mark.parametrize("where", ["sentence_transformers_file", "config_v4"])
def test_saved_activation(plain_dir, st_module, tmp_path, where):
    """The activation a checkpoint names: config_sentence_transformers.json (sentence-transformers >= 5) or
    config.json's `sentence_transformers` entry (4.x)."""
    if where == "sentence_transformers_file":
        folder = tmp_path / "st-sigmoid"
        st_module.CrossEncoder(str(plain_dir), device="cpu", activation_fn=torch.nn.Sigmoid()).save(str(folder))
        expected_name = "Sigmoid"
    else:
        folder = build_model(tmp_path / "v4")
        edit_config(folder, sbert_ce_default_activation_function=None,
                    sentence_transformers={"activation_fn": "torch.nn.modules.activation.Tanh", "version": "4.0.1"})
        expected_name = "Tanh"
    ours = _ours(folder, max_length=64)
    assert ours.activation_name.endswith(expected_name)
    theirs = st_module.CrossEncoder(str(folder), device="cpu", max_length=64)
    assert type(theirs.activation_fn).__name__ == expected_name
    assert np.abs(ours.predict(PAIRS[:12]) - theirs.predict(PAIRS[:12])).max() < 1e-4


def test_several_labels(st_module, plain_dir, tmp_path):
    folder = build_model(tmp_path / "three", num_labels=3)
    edit_config(folder, sbert_ce_default_activation_function=None)
    theirs = st_module.CrossEncoder(str(folder), device="cpu", max_length=64).predict(PAIRS[:8])
    assert theirs.shape == (8, 3)
    assert np.abs(_ours(folder, max_length=64).predict(PAIRS[:8]) - theirs[:, 1]).max() < 1e-4  # label 1 by default
    assert np.abs(_ours(folder, max_length=64, label=2).predict(PAIRS[:8]) - theirs[:, 2]).max() < 1e-4
    with pytest.raises(InputError, match="out of range"):
        _ours(folder, label=3)


def test_threads_restored_and_inputs_checked(plain_dir):
    before = torch.get_num_threads()
    ce = _ours(plain_dir, max_length=32, threads=1)
    ce.predict(PAIRS[:3])
    assert torch.get_num_threads() == before
    assert ce.predict([]).shape == (0,)
    with pytest.raises(InputError, match="single pair"):
        ce.predict(("query", "document"))
    with pytest.raises(InputError, match="pair 1"):
        ce.predict([("q", "d"), ("q", 3)])
    with pytest.raises(RankstackError, match="not implemented"):
        _ours(plain_dir, backend="onnx")
    with pytest.raises(InputError, match="exceeds"):
        _ours(plain_dir, max_length=1024)
    with pytest.raises(InputError, match="depth"):
        _ours(plain_dir, depth=0)
