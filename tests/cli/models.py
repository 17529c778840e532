"""Tiny random-weight models for the command-line tests (mechanics only, never quality): one BERT masked LM with a
word-level vocabulary serves as a dense, SPLADE, inference-free and multi-vector encoder, and a BERT sequence
classifier as a cross-encoder."""

from __future__ import annotations

from pathlib import Path

WORDS = ("vitamin bone density cancer risk smoking lung cell cells tumour gene protein immune therapy diet sleep heart "
         "blood pressure brain memory aging virus vaccine infection dose trial the of and in a to is for with mice "
         "patients study effect treatment disease expression levels human clinical").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", ".", ",", "?"]


def _tokenizer(path: Path) -> None:
    from transformers import BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join([*SPECIAL, *WORDS]) + "\n")
    BertTokenizerFast(str(path / "vocab.txt"), model_max_length=256).save_pretrained(path)


def _config(**extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=256, **extra)


def tiny_mlm(path: Path, seed: int = 0) -> Path:
    """A 1-layer BertForMaskedLM (hidden 16): loads as a dense, SPLADE, inference-free or multi-vector encoder."""
    import torch
    from transformers import BertForMaskedLM

    _tokenizer(path)
    torch.manual_seed(seed)
    BertForMaskedLM(_config()).save_pretrained(path)
    return path


def tiny_cross_encoder(path: Path, seed: int = 0) -> Path:
    """A 1-layer BertForSequenceClassification with one label."""
    import torch
    from transformers import BertForSequenceClassification

    _tokenizer(path)
    torch.manual_seed(seed)
    BertForSequenceClassification(_config(num_labels=1)).save_pretrained(path)
    return path
