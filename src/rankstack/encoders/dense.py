"""Dense bi-encoder: one float32 vector per text (mean, CLS or max pooling; optional L2 normalisation)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rankstack.encoders.batching import Batch, check_texts, default_batching, run_batches
from rankstack.encoders.loading import PathLike, load_model
from rankstack.errors import InputError

#: Named query/document prefix pairs: E5's, and BGE's query instruction.
PREFIX_PRESETS = {"e5": ("query: ", "passage: "),
                  "bge": ("Represent this sentence for searching relevant passages: ", "")}
POOLINGS = ("mean", "cls", "max")


class DenseEncoder:
    """Encode queries and documents into float32 vectors with a transformers or sentence-transformers model.

    `model`: a hub id or a local directory. Pooling and normalisation default to what a sentence-transformers
    directory says (mean and none for a plain transformers model). Prefixes default to the model's prompts
    ('query'; 'document', 'passage' or 'corpus'); `prefixes="e5"` or `"bge"` picks a preset, and
    `query_prefix` / `document_prefix` override either. `batch_size` texts and `token_budget` padded tokens
    at most per batch (defaults: 32 on CPU; 256 and 65,536 tokens on CUDA).
    """

    def __init__(self, model: PathLike, *, pooling: str | None = None, normalize: bool | None = None,
                 prefixes: str | None = None, query_prefix: str | None = None, document_prefix: str | None = None,
                 max_length: int | None = None, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, token_budget: int | None = None, revision: str | None = None,
                 progress: bool | None = None):
        self.loaded = load_model(model, task="base", device=device, dtype=dtype, max_length=max_length,
                                 revision=revision)
        spec = self.loaded.spec
        self.pooling = pooling or spec.pooling or "mean"
        if self.pooling not in POOLINGS:
            raise InputError(f"unknown pooling {self.pooling!r} (expected one of {', '.join(POOLINGS)})")
        self.normalize = spec.normalize if normalize is None else bool(normalize)
        if prefixes is not None:
            if prefixes not in PREFIX_PRESETS:
                raise InputError(f"unknown prefixes preset {prefixes!r} (expected one of {', '.join(PREFIX_PRESETS)})")
            q, d = PREFIX_PRESETS[prefixes]
        else:
            prompts = spec.prompts
            q = prompts.get("query", "")
            d = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts),
                     prompts.get(spec.default_prompt_name or "", ""))
        self.query_prefix = q if query_prefix is None else query_prefix
        self.document_prefix = d if document_prefix is None else document_prefix
        self.batch_size, self.token_budget = default_batching(self.loaded.device, batch_size, token_budget)
        self.progress = progress
        self.dimension = int(self.loaded.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

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

        def tokenize(chunk: list[str]) -> list[list[int]]:
            chunk = [prefix + t for t in chunk] if prefix else chunk
            chunk = [t.lower() for t in chunk] if lower else chunk
            return lm.tokenize(chunk)

        for positions, vectors in run_batches(texts, tokenize, self._forward, _to_numpy, device=lm.device,
                                              pad_id=lm.tokenizer.pad_token_id or 0, batch_size=self.batch_size,
                                              token_budget=self.token_budget, progress=self.progress):
            out[positions] = vectors
        return out

    def _forward(self, b: Batch) -> torch.Tensor:
        lm, mask = self.loaded, b.attention_mask
        hidden = lm.model(input_ids=b.input_ids, attention_mask=lm.attention_mask(mask, b.full)).last_hidden_state
        emb = pool(hidden, mask, self.pooling)
        return F.normalize(emb, p=2, dim=1) if self.normalize else emb

    def model_info(self) -> dict[str, Any]:
        """What an index must record to be queried consistently (see `check_compatible`)."""
        return {**self.loaded.info(), "encoder": "dense", "pooling": self.pooling, "normalize": self.normalize,
                "dimension": self.dimension, "max_length": self.loaded.max_length,
                "lowercase": self.loaded.spec.do_lower_case,
                "query_prefix": self.query_prefix, "document_prefix": self.document_prefix}

    def __repr__(self) -> str:
        return (f"DenseEncoder({self.loaded.spec.name!r}, pooling={self.pooling!r}, normalize={self.normalize}, "
                f"dimension={self.dimension}, device={str(self.device)!r})")


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token vectors [B, L, H] under the attention mask [B, L] into float32 [B, H]."""
    if mode == "cls":
        return hidden[:, 0].float()
    if mode == "max":
        return hidden.masked_fill(mask[..., None] == 0, float("-inf")).amax(1).float()
    weights = mask.to(hidden.dtype)
    summed = torch.bmm(weights[:, None, :], hidden)[:, 0].float()  # fp32 accumulation, no [B, L, H] product
    return summed / mask.sum(1, keepdim=True).clamp(min=1).float()


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()
