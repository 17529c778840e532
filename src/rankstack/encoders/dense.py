"""Dense bi-encoder: one float32 vector per text, as a sentence-transformers model computes it (mean, CLS, max or
last-token pooling, optionally without the prompt's tokens; Dense layers; L2 normalisation; Matryoshka truncation)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rankstack.encoders.base import Encoder
from rankstack.encoders.batching import Batch, check_texts, default_batching, run_batches
from rankstack.encoders.loading import POOLINGS, ModelSpec, PathLike, load_model, model_max_length
from rankstack.errors import InputError, RankstackError

#: Named query/document prefix pairs: E5's, and BGE's query instruction.
PREFIX_PRESETS = {"e5": ("query: ", "passage: "),
                  "bge": ("Represent this sentence for searching relevant passages: ", "")}


class DenseEncoder(Encoder):
    """Encode queries and documents into float32 vectors with a transformers or sentence-transformers model.

    `model`: a hub id, a local folder or "package:NAME" (rankstack.encoders.names). Pooling ("mean", "cls",
    "max", "lasttoken"), `include_prompt` (False: the prefix's tokens are left out of the pooling), normalisation
    and `truncate_dim` (Matryoshka: keep the first dimensions, then normalise again when normalising) default to
    what a sentence-transformers folder says (mean pooling and no normalisation for a plain transformers model);
    its Dense layers are applied after the pooling. Decoder embedders (Qwen3-Embedding) are padded on the side
    their tokenizer says (left) and pooled on their last token. Prefixes default to the model's prompts
    ('query'; 'document', 'passage' or 'corpus'); `prefixes="e5"` or `"bge"` picks a preset, and `query_prefix` /
    `document_prefix` override either. `batch_size` texts and `token_budget` padded tokens at most per batch
    (defaults: 32 and 2,048 tokens on CPU; 256 and 65,536 tokens on CUDA). `dtype` "int8" (CPU): dynamic int8
    quantisation of the Linear layers (rankstack.encoders.loading.quantize_int8), recorded as the record's dtype.
    `compile=True`: the model compiled by torch.compile (`rankstack.encoders.loading.compile_model`): faster for
    large corpora once compiled, the same vectors to float rounding.
    """

    kind = "dense"

    def __init__(self, model: PathLike | ModelSpec, *, pooling: str | None = None, normalize: bool | None = None,
                 prefixes: str | None = None, query_prefix: str | None = None, document_prefix: str | None = None,
                 max_length: int | None = None, truncate_dim: int | None = None, include_prompt: bool | None = None,
                 device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                 token_budget: int | None = None, revision: str | None = None, progress: bool | None = None,
                 compile: bool = False):
        self.loaded = load_model(model, task="base", device=device, dtype=dtype, max_length=max_length,
                                 revision=revision, compile=compile)
        spec = self.loaded.spec
        token_layers = [layer.path.name for layer in spec.dense if layer.tokens]
        if token_layers:
            raise RankstackError(f"{spec.path}: its Dense module {token_layers[0]} projects token vectors (a ColBERT "
                                 "model): load it with MultiVectorEncoder")
        self.pooling = pooling or spec.pooling or "mean"
        if self.pooling not in POOLINGS:
            raise InputError(f"unknown pooling {self.pooling!r} (expected one of {', '.join(POOLINGS)})")
        self.include_prompt = spec.include_prompt if include_prompt is None else bool(include_prompt)
        self.normalize = spec.normalize if normalize is None else bool(normalize)
        q_default, d_default = _model_prefixes(spec)
        if prefixes is not None:
            if prefixes not in PREFIX_PRESETS:
                raise InputError(f"unknown prefixes preset {prefixes!r} (expected one of {', '.join(PREFIX_PRESETS)})")
            q, d = PREFIX_PRESETS[prefixes]
        else:
            q, d = q_default, d_default
        self.query_prefix = q if query_prefix is None else query_prefix
        self.document_prefix = d if document_prefix is None else document_prefix
        hidden = int(self.loaded.model.config.hidden_size)
        for layer in spec.dense:
            if layer.in_features != hidden:
                raise RankstackError(f"{layer.path}: the Dense module takes {layer.in_features} dimensions, the model "
                                     f"gives {hidden}")
            hidden = layer.out_features
        self.full_dimension = hidden
        self.truncate_dim = spec.truncate_dim if truncate_dim is None else truncate_dim
        if self.truncate_dim is not None and not 1 <= self.truncate_dim <= hidden:
            raise InputError(f"truncate_dim={self.truncate_dim} must lie between 1 and the model's {hidden} dimensions")
        self.dimension = self.truncate_dim or hidden
        self.batch_size, self.token_budget = default_batching(self.loaded.device, batch_size, token_budget)
        self.progress = progress
        self._prompt_lengths: dict[str, int] = {}
        self._model_defaults = {"pooling": spec.pooling or "mean", "normalize": spec.normalize,
                                "query_prefix": q_default, "document_prefix": d_default,
                                "max_length": model_max_length(spec, self.loaded.tokenizer, self.loaded.model.config,
                                                               None),
                                "truncate_dim": spec.truncate_dim, "include_prompt": spec.include_prompt}
        self._keep_runtime(device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget,
                           revision=revision, progress=progress, compile=compile or None)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, float32 [n, dimension], with the query prefix."""
        return self.encode(texts, prefix=self.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Document vectors, float32 [n, dimension], with the document prefix."""
        return self.encode(texts, prefix=self.document_prefix)

    def encode(self, texts: Sequence[str], *, prefix: str = "") -> np.ndarray:
        """Vectors of `prefix + text`, float32 [n, dimension], in the order given; long texts are truncated."""
        texts = check_texts(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        lm = self.loaded
        lower = lm.spec.do_lower_case
        skip = 0 if self.include_prompt or not prefix else self._prompt_length(prefix)

        def tokenize(chunk: list[str]) -> list[list[int]]:
            chunk = [prefix + t for t in chunk] if prefix else chunk
            chunk = [t.lower() for t in chunk] if lower else chunk
            return lm.tokenize(chunk)

        for positions, vectors in run_batches(texts, tokenize, lambda b: self._forward(b, skip), _to_numpy,
                                              device=lm.device, pad_id=lm.tokenizer.pad_token_id or 0,
                                              batch_size=self.batch_size, token_budget=self.token_budget,
                                              left=lm.left_padding, progress=self.progress):
            out[positions] = vectors
        return out

    def _prompt_length(self, prefix: str) -> int:
        """Tokens of the prefix alone, without a trailing special token (as sentence-transformers counts them)."""
        if prefix not in self._prompt_lengths:
            ids = self.loaded.tokenize([prefix.lower() if self.loaded.spec.do_lower_case else prefix])[0]
            special = set(self.loaded.tokenizer.all_special_ids)
            self._prompt_lengths[prefix] = len(ids) - (1 if ids and ids[-1] in special else 0)
        return self._prompt_lengths[prefix]

    def _forward(self, b: Batch, skip: int) -> torch.Tensor:
        lm, mask = self.loaded, b.attention_mask
        hidden = lm.model(input_ids=b.input_ids, attention_mask=lm.attention_mask(mask, b.full)).last_hidden_state
        emb = pool(hidden, mask if not skip else without_prompt(mask, skip), self.pooling)
        for layer in lm.dense:
            emb = layer(emb)
        if self.truncate_dim is not None:
            emb = emb[:, :self.truncate_dim]
        return F.normalize(emb, p=2, dim=1) if self.normalize else emb

    # --- the record ------------------------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {**self.loaded.info(), "encoder": "dense", "pooling": self.pooling, "normalize": self.normalize,
                "dimension": self.dimension, "max_length": self.loaded.max_length,
                "lowercase": self.loaded.spec.do_lower_case,
                "query_prefix": self.query_prefix, "document_prefix": self.document_prefix,
                "include_prompt": self.include_prompt, "truncate_dim": self.truncate_dim,
                "dense": [layer.describe() for layer in self.loaded.spec.dense]}

    @classmethod
    def record_arguments(cls, record: dict[str, Any]) -> dict[str, Any]:
        return {key: record.get(key) for key in ("pooling", "normalize", "query_prefix", "document_prefix",
                                                 "max_length", "truncate_dim", "include_prompt")}


def _model_prefixes(spec: ModelSpec) -> tuple[str, str]:
    prompts = spec.prompts
    document = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts),
                    prompts.get(spec.default_prompt_name or "", ""))
    return prompts.get("query", ""), document


def without_prompt(mask: torch.Tensor, length: int) -> torch.Tensor:
    """The attention mask without each row's first `length` real tokens (the prompt's, as sentence-transformers
    leaves them out of the pooling with include_prompt=False); rows may be padded on either side."""
    first = mask.argmax(1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device)
    return mask * (positions >= first + length)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token vectors [B, L, H] under the mask [B, L] into float32 [B, H] (rows padded on either side)."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode == "cls":  # the first unmasked token
        return hidden[rows, mask.argmax(1)].float()
    if mode == "lasttoken":  # the last unmasked token
        return hidden[rows, mask.shape[1] - 1 - mask.flip(1).argmax(1)].float()
    if mode == "max":
        return hidden.masked_fill(mask[..., None] == 0, float("-inf")).amax(1).float()
    weights = mask.to(hidden.dtype)
    summed = torch.bmm(weights[:, None, :], hidden)[:, 0].float()  # fp32 accumulation, no [B, L, H] product
    return summed / mask.sum(1, keepdim=True).clamp(min=1).float()


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()
