import shutil

import numpy as np
import pytest
import torch

from rankstack.encoders import MultiVectorEncoder
from rankstack.errors import InputError

DIM = 48


@pytest.fixture(scope="module")
def head():
    return np.random.default_rng(0).standard_normal((DIM, 384)).astype(np.float32)


@pytest.fixture(scope="module")
def encoder(minilm_dir, head):
    return MultiVectorEncoder(minilm_dir, projection=head, device="cpu", batch_size=2, progress=False)


def manual(encoder, head, ids, attend):
    """ColBERT's computation spelled out: last layer, projection, per-token L2 normalisation."""
    with torch.inference_mode():
        h = encoder.loaded.model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attend])).last_hidden_state[0]
        h = h @ torch.from_numpy(head).T
        return torch.nn.functional.normalize(h, dim=-1).numpy()


def test_queries_markers_and_mask_augmentation(encoder, head):
    tok = encoder.loaded.tokenizer
    texts = ["vitamin d bone density", "what causes lung cancer in non-smokers?"]
    out = encoder.encode_queries(texts)
    assert [q.shape for q in out] == [(32, DIM)] * 2 and all(q.dtype == np.float32 for q in out)
    assert np.allclose(np.linalg.norm(out[0], axis=1), 1, atol=1e-5)
    words = tok(texts[0], add_special_tokens=False)["input_ids"]
    ids = [tok.cls_token_id, tok.convert_tokens_to_ids("[unused0]"), *words, tok.sep_token_id]
    n_real = len(ids)
    ids += [tok.mask_token_id] * (32 - n_real)
    expected = manual(encoder, head, ids, [1] * n_real + [0] * (32 - n_real))  # [MASK]s are not attended to
    assert np.abs(out[0] - expected).max() < 1e-5
    long = encoder.encode_queries(["word " * 100])[0]
    assert long.shape == (32, DIM)
    encoder.attend_to_mask_tokens = True  # ColBERT's attend_to_mask_tokens option
    try:
        attending = encoder.encode_queries(texts[:1])[0]
    finally:
        encoder.attend_to_mask_tokens = False
    assert np.abs(attending - manual(encoder, head, ids, [1] * 32)).max() < 1e-5


def test_documents_marker_and_punctuation(encoder, head):
    tok = encoder.loaded.tokenizer
    out = encoder.encode_documents(["Hello, world! It works.", "cells"])
    ids = [tok.cls_token_id, tok.convert_tokens_to_ids("[unused1]"),
           *tok("Hello, world! It works.", add_special_tokens=False)["input_ids"], tok.sep_token_id]
    kept = [i for i, t in enumerate(ids) if tok.convert_ids_to_tokens(t) not in {",", "!", "."}]
    assert out[0].shape == (len(ids) - 3, DIM) == (len(kept), DIM)  # ",", "!" and "." skipped
    assert np.abs(out[0] - manual(encoder, head, ids, [1] * len(ids))[kept]).max() < 1e-5
    assert out[1].shape == (4, DIM)  # [CLS] [D] cells [SEP]
    assert out[1].dtype == np.float32 and np.allclose(np.linalg.norm(out[1], axis=1), 1, atol=1e-5)
    assert max(d.shape[0] for d in encoder.encode_documents(["word " * 1000])) == 180


def test_options(minilm_dir, head, encoder):
    plain = MultiVectorEncoder(minilm_dir, projection=head, augment_queries=False, skip_punctuation=False,
                               device="cpu", progress=False)
    assert plain.encode_queries(["lung cancer"])[0].shape == (5, DIM)
    assert plain.encode_documents(["Hello, world!"])[0].shape == (7, DIM)
    assert plain.model_info()["projection"] == encoder.model_info()["projection"]
    no_head = MultiVectorEncoder(minilm_dir, projection=None, query_length=8, device="cpu", progress=False)
    assert no_head.encode_queries(["x"])[0].shape == (8, 384)
    with pytest.raises(InputError):
        MultiVectorEncoder(minilm_dir, projection=head[:, :10], device="cpu")
    with pytest.raises(InputError):
        MultiVectorEncoder(minilm_dir, query_marker="[no-such-token]", device="cpu")
    with pytest.raises(InputError):
        encoder.encode_documents(["ok", ""])


def test_projection_loaded_from_colbert_checkpoint(minilm_dir, tmp_path):
    """A small random BERT saved with a ColBERT `linear.weight`: projection="auto" picks it up."""
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
                     add_pooling_layer=False)
    bert.config.save_pretrained(tmp_path)
    linear = torch.randn(16, 32)
    save_file({**{k: v.contiguous() for k, v in bert.state_dict().items()}, "linear.weight": linear},
              str(tmp_path / "model.safetensors"))
    enc = MultiVectorEncoder(tmp_path, device="cpu", progress=False)
    assert enc.dimension == 16 and torch.equal(enc.head[0].weight, linear)
    assert enc.encode_documents(["a small test"])[0].shape == (6, 16)
