"""ColBERT-style multi-vector encoder: one L2-normalised vector per token."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rankstack.encoders.batching import Batch, check_texts, default_batching, run_batches
from rankstack.encoders.loading import PathLike, load_model
from rankstack.errors import InputError, RankstackError


class MultiVectorEncoder:
    """Token embeddings of the last layer, projected (`linear.weight` of a ColBERT checkpoint when present, or
    `projection` [dim, hidden]), L2-normalised per token, as ColBERT computes them.

    Queries: [CLS] [Q] tokens [SEP], padded with [MASK] to `query_length` (query augmentation; the real tokens
    do not attend to the [MASK]s unless `attend_to_mask_tokens`); every position is returned. Documents:
    [CLS] [D] tokens [SEP], at most `document_max_length` tokens; padding and (by default) punctuation tokens
    are dropped. Markers are "[unused0]" / "[unused1]" as in ColBERT.
    """

    def __init__(self, model: PathLike, *, projection: np.ndarray | torch.Tensor | str | None = "auto",
                 query_length: int = 32, document_max_length: int = 180, query_marker: str = "[unused0]",
                 document_marker: str = "[unused1]", augment_queries: bool = True, attend_to_mask_tokens: bool = False,
                 skip_punctuation: bool = True, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, token_budget: int | None = None, revision: str | None = None,
                 progress: bool | None = None):
        self.loaded = lm = load_model(model, task="base", device=device, dtype=dtype, revision=revision)
        for name, length in (("query_length", query_length), ("document_max_length", document_max_length)):
            if not 4 <= length <= lm.max_length:
                raise InputError(f"{name}={length} must lie between 4 and the model's {lm.max_length} tokens")
        tok = lm.tokenizer
        self.markers = (query_marker, document_marker)
        self._q_marker, self._d_marker = (self._token_id(t) for t in self.markers)
        self._special = (tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.pad_token_id or 0)
        if None in self._special[:3]:
            raise RankstackError(f"{lm.spec.transformer_path}: the tokenizer lacks [CLS], [SEP] or [MASK] tokens")
        hidden = int(lm.model.config.hidden_size)
        weight = _load_linear(lm.spec.transformer_path) if isinstance(projection, str) and projection == "auto" else projection
        if isinstance(weight, str):
            raise InputError(f"projection must be 'auto', None or a [dim, hidden] matrix, got {weight!r}")
        self.projection: torch.Tensor | None = None
        self._projection_hash = None
        if weight is not None:
            w = torch.as_tensor(np.asarray(weight, dtype=np.float32) if not torch.is_tensor(weight) else weight.float())
            if w.ndim != 2 or w.shape[1] != hidden:
                raise InputError(f"projection must have shape [dim, {hidden}], got {tuple(w.shape)}")
            self._projection_hash = "sha256:" + hashlib.sha256(w.contiguous().numpy().tobytes()).hexdigest()[:24]
            self.projection = w.to(lm.device, lm.dtype)
        self.dimension = hidden if self.projection is None else int(self.projection.shape[0])
        self.query_length, self.document_max_length = query_length, document_max_length
        self.augment_queries, self.attend_to_mask_tokens = augment_queries, attend_to_mask_tokens
        self.skip_punctuation = skip_punctuation
        punct = tok(list(string.punctuation), add_special_tokens=False)["input_ids"]
        self._skip = torch.tensor(sorted({ids[0] for ids in punct if len(ids) == 1}), device=lm.device)
        self.batch_size, self.token_budget = default_batching(lm.device, batch_size, token_budget)
        self.progress = progress

    def _token_id(self, token: str) -> int:
        tok = self.loaded.tokenizer
        tid = tok.convert_tokens_to_ids(token)
        if tid is None or (tid == tok.unk_token_id and token != tok.unk_token):
            raise InputError(f"marker token {token!r} is not in the tokenizer's vocabulary")
        return int(tid)

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per query a float32 [query_length, dim] array ([n_tokens, dim] without augmentation)."""
        return self._encode(texts, self._q_marker, self.query_length, query=True)

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per document a float32 [n_tokens, dim] array: its kept tokens, markers included."""
        return self._encode(texts, self._d_marker, self.document_max_length, query=False)

    def _encode(self, texts: Sequence[str], marker: int, max_length: int, query: bool) -> list[np.ndarray]:
        texts = check_texts(texts)
        lm = self.loaded
        cls, sep, mask_id, pad_id = self._special
        augment = query and self.augment_queries

        def tokenize(chunk: list[str]) -> list[list[int]]:
            ids = lm.tokenize(chunk, max_length - 3, add_special_tokens=False)
            return [[cls, marker, *t, sep] for t in ids]

        def forward(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            ids, mask = b.input_ids, b.attention_mask
            attend_all = augment and self.attend_to_mask_tokens
            attend = lm.attention_mask(torch.ones_like(mask) if attend_all else mask, b.full or attend_all)
            h = lm.model(input_ids=ids, attention_mask=attend).last_hidden_state
            if self.projection is not None:
                h = h @ self.projection.T
            h = F.normalize(h.float(), p=2, dim=-1)
            keep = torch.ones_like(mask, dtype=torch.bool) if augment else mask.bool()
            if not query and self.skip_punctuation:
                keep &= ~torch.isin(ids, self._skip)
            return h, keep

        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for positions, rows in run_batches(texts, tokenize, forward, _split_rows, device=lm.device,
                                           pad_id=mask_id if augment else pad_id, batch_size=self.batch_size,
                                           token_budget=self.token_budget, pad_to=max_length if augment else None,
                                           progress=self.progress):
            for p, r in zip(positions.tolist(), rows):
                out[p] = r
        return out

    def model_info(self) -> dict[str, Any]:
        """What an index must record to be queried consistently (see `check_compatible`)."""
        return {**self.loaded.info(), "encoder": "multivector", "dimension": self.dimension,
                "projection": self._projection_hash, "query_length": self.query_length,
                "document_max_length": self.document_max_length, "markers": list(self.markers),
                "augment_queries": self.augment_queries, "attend_to_mask_tokens": self.attend_to_mask_tokens,
                "skip_punctuation": self.skip_punctuation}

    def __repr__(self) -> str:
        return (f"MultiVectorEncoder({self.loaded.spec.name!r}, dimension={self.dimension}, "
                f"device={str(self.loaded.device)!r})")


def _split_rows(out: tuple[torch.Tensor, torch.Tensor]) -> list[np.ndarray]:
    h, keep = out
    counts = keep.sum(1).cpu().numpy()
    vectors = h[keep].cpu().numpy()
    return np.split(vectors, np.cumsum(counts)[:-1])


def _load_linear(folder: Path) -> torch.Tensor | None:
    """A ColBERT checkpoint's projection `linear.weight`, or None when the weights hold none."""
    st = folder / "model.safetensors"
    if st.exists():
        from safetensors import safe_open
        with safe_open(str(st), framework="pt") as f:
            return f.get_tensor("linear.weight") if "linear.weight" in f.keys() else None
    pt = folder / "pytorch_model.bin"
    if pt.exists():
        return torch.load(pt, map_location="cpu", weights_only=True).get("linear.weight")
    return None
