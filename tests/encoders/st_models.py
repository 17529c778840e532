"""Tiny random-weight models saved in the layouts users bring: sentence-transformers (Dense, Pooling modes,
include_prompt, Normalize, truncate_dim), a decoder embedder (Qwen2, left padding, last-token pooling), and
ColBERT checkpoints as PyLate, sentence-transformers' multi-vector encoder and Stanford ColBERT save them.
Built from configs with the MiniLM WordPiece tokenizer; mechanics only, their vectors mean nothing."""

import json
import shutil
import string
from pathlib import Path

from tests.rerank.conftest import CONFIG_ONLY

HIDDEN = 32


def build_bert(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY).save_pretrained(out)
    return out


def build_qwen2(out: Path, seed: int = 0) -> Path:
    """A decoder embedder as Qwen3-Embedding is one: causal attention, a tokenizer that pads on the left."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=30522, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0)
    Qwen2Model(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY, padding_side="left").save_pretrained(out)
    return out


def save_sentence_transformer(backbone: Path, out: Path, pooling: str = "mean", include_prompt: bool = True,
                              dense: list[tuple[int, str, bool]] = (), normalize: bool = True, seed: int = 0,
                              **model_options) -> Path:
    """backbone -> Pooling -> Dense layers (out_features, activation class name, bias) -> Normalize, saved by
    sentence-transformers itself. `model_options`: prompts, truncate_dim..."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    torch.manual_seed(seed)
    modules = [Transformer(str(backbone), max_seq_length=64), Pooling(HIDDEN, pooling, include_prompt=include_prompt)]
    width = HIDDEN
    for features, activation, bias in dense:
        modules.append(Dense(width, features, bias=bias, activation_function=getattr(torch.nn, activation)()))
        width = features
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu", **model_options).save(str(out))
    return out


def save_pylate(backbone: Path, out: Path, seed: int = 1, query_length: int = 12, document_length: int = 40) -> Path:
    """A ColBERT checkpoint in PyLate's layout: [Transformer, pylate Dense], [Q]/[D] prefixes added to the
    tokenizer, PyLate's settings at the top of config_sentence_transformers.json."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertModel

    shutil.copytree(backbone, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.add_tokens(["[Q] ", "[D] "])
    tokenizer.save_pretrained(out)
    model = BertModel.from_pretrained(out, add_pooling_layer=False)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(out)
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "model_type": "ColBERT", "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "MaxSim",
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": query_length,
        "document_length": document_length, "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation)}))
    (out / "1_Dense").mkdir()
    (out / "1_Dense" / "config.json").write_text(json.dumps({
        "in_features": HIDDEN, "out_features": 8, "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity"}))
    torch.manual_seed(seed)
    save_file({"linear.weight": torch.randn(8, HIDDEN)}, str(out / "1_Dense" / "model.safetensors"))
    return out


def save_multi_vector(pylate: Path, out: Path) -> Path:
    """The same model in sentence-transformers' own multi-vector layout (prompts, query_expansion,
    MultiVectorMask), as its MultiVectorEncoder saves a PyLate checkpoint it loaded."""
    from sentence_transformers import MultiVectorEncoder

    MultiVectorEncoder(str(pylate), device="cpu").save(str(out))
    return out


def save_stanford(backbone: Path, out: Path, seed: int = 2) -> Path:
    """A Stanford ColBERT checkpoint: HF_ColBERT weights (bert.* and linear.weight) and artifact.metadata."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(backbone, out)
    weights = load_file(str(out / "model.safetensors"))
    torch.manual_seed(seed)
    weights = {**{f"bert.{k}": v for k, v in weights.items()}, "linear.weight": torch.randn(8, HIDDEN)}
    save_file(weights, str(out / "model.safetensors"))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "architectures": ["HF_ColBERT"]}))
    (out / "artifact.metadata").write_text(json.dumps({
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 16, "doc_maxlen": 30,
        "mask_punctuation": True, "attend_to_mask_tokens": False, "dim": 8}))
    return out
