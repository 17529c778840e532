"""Tiny random-weight generative models (Llama causal, T5 encoder-decoder) with the MiniLM WordPiece tokenizer, built
from configs for the generative reranker tests: mechanics only, their scores mean nothing."""

from pathlib import Path

import pytest

from tests.rerank.conftest import CONFIG_ONLY

VOCAB = 30522  # the MiniLM tokenizer's


def require_models():
    """Skip where torch, transformers or the shared tokenizer folder is missing."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not CONFIG_ONLY.is_dir():
        pytest.skip(f"tokenizer folder not found: {CONFIG_ONLY}")


def build_llama(out: Path, seed: int = 0, max_positions: int = 256) -> Path:
    require_models()
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                      pad_token_id=0, bos_token_id=101, eos_token_id=102)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY).save_pretrained(out)
    return out


def build_t5(out: Path, seed: int = 0) -> Path:
    require_models()
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                   pad_token_id=0, eos_token_id=102, decoder_start_token_id=0)
    torch.manual_seed(seed)
    T5ForConditionalGeneration(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("lm") / "llama")


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory) -> Path:
    return build_t5(tmp_path_factory.mktemp("lm") / "t5")
