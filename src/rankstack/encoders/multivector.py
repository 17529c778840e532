"""ColBERT-style multi-vector encoder: one L2-normalised vector per token (Stanford ColBERT, PyLate and
sentence-transformers multi-vector checkpoints)."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rankstack.encoders.base import Encoder
from rankstack.encoders.batching import Batch, check_texts, default_batching, run_batches
from rankstack.encoders.loading import ModelSpec, PathLike, load_model
from rankstack.errors import InputError, RankstackError
from rankstack.records import InMemory

#: ColBERT's settings where a checkpoint states none.
COLBERT_DEFAULTS = {"query_length": 32, "document_max_length": 180, "query_marker": "[unused0]",
                    "document_marker": "[unused1]", "augment_queries": True, "attend_to_mask_tokens": False,
                    "skip_punctuation": True}


class MultiVectorEncoder(Encoder):
    """Token embeddings of the last layer, projected, L2-normalised per token, as ColBERT computes them.

    `projection`: "auto" takes the checkpoint's (the Dense modules of a PyLate or sentence-transformers
    multi-vector model, or a Stanford checkpoint's `linear.weight`), None uses none, or a [dim, hidden] matrix.
    Queries: [CLS] [Q] tokens [SEP], padded with [MASK] to `query_length` (query augmentation; the real tokens
    do not attend to the [MASK]s unless `attend_to_mask_tokens`); every position is returned. Documents:
    [CLS] [D] tokens [SEP], at most `document_max_length` tokens; padding and (by default) the skiplist's tokens
    (punctuation, or the checkpoint's skiplist) are dropped. Settings left None come from the checkpoint
    (PyLate's config, sentence-transformers' multi-vector layout, Stanford's artifact.metadata), else ColBERT's
    defaults: markers "[unused0]" / "[unused1]", 32 query tokens, 180 document tokens. `compile=True`: the model
    compiled by torch.compile (rankstack.encoders.loading.compile_model).
    """

    kind = "multivector"

    def __init__(self, model: PathLike | ModelSpec, *, projection: np.ndarray | torch.Tensor | str | None = "auto",
                 query_length: int | None = None, document_max_length: int | None = None,
                 query_marker: str | None = None, document_marker: str | None = None,
                 augment_queries: bool | None = None, attend_to_mask_tokens: bool | None = None,
                 skip_punctuation: bool | None = None, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, token_budget: int | None = None, revision: str | None = None,
                 progress: bool | None = None, compile: bool = False):
        self.loaded = lm = load_model(model, task="base", device=device, dtype=dtype, revision=revision,
                                      compile=compile)
        stated = {**COLBERT_DEFAULTS, **{k: v for k, v in lm.spec.colbert.items() if k in COLBERT_DEFAULTS}}
        given = {"query_length": query_length, "document_max_length": document_max_length,
                 "query_marker": query_marker, "document_marker": document_marker, "augment_queries": augment_queries,
                 "attend_to_mask_tokens": attend_to_mask_tokens, "skip_punctuation": skip_punctuation}
        settings = {k: stated[k] if v is None else v for k, v in given.items()}
        for name in ("query_length", "document_max_length"):
            if not 4 <= settings[name] <= lm.max_length:
                raise InputError(f"{name}={settings[name]} must lie between 4 and the model's {lm.max_length} tokens")
        tok = lm.tokenizer
        self.markers = (settings["query_marker"], settings["document_marker"])
        self._q_marker, self._d_marker = (self._token_id(t) for t in self.markers)
        self._special = (tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.pad_token_id or 0)
        if None in self._special[:3]:
            raise RankstackError(f"{lm.spec.transformer_path}: the tokenizer lacks [CLS], [SEP] or [MASK] tokens")
        hidden = int(lm.model.config.hidden_size)
        checkpoint = _checkpoint_head(lm)
        self.head, self._projection_hash, self._projection_given = None, None, None
        if isinstance(projection, str):
            if projection != "auto":
                raise InputError(f"projection must be 'auto', None or a [dim, hidden] matrix, got {projection!r}")
            if checkpoint is not None:
                self.head, self._projection_hash = checkpoint
        elif projection is not None:
            w = torch.as_tensor(np.asarray(projection, dtype=np.float32) if not torch.is_tensor(projection)
                                else projection.float())
            if w.ndim != 2 or w.shape[1] != hidden:
                raise InputError(f"projection must have shape [dim, {hidden}], got {tuple(w.shape)}")
            self.head, self._projection_hash = _linear_head(w)
            self._projection_given = InMemory("projection", tuple(w.shape), self._projection_hash)
        if self.head is not None:
            self.head = self.head.to(lm.device)
            first = next(m for m in self.head if isinstance(m, torch.nn.Linear))
            if first.in_features != hidden:
                raise RankstackError(f"the checkpoint's projection takes {first.in_features} dimensions, the model "
                                     f"gives {hidden}")
        linears = [m for m in self.head or [] if isinstance(m, torch.nn.Linear)]
        self.dimension = linears[-1].out_features if linears else hidden
        self.query_length, self.document_max_length = settings["query_length"], settings["document_max_length"]
        self.augment_queries = settings["augment_queries"]
        self.attend_to_mask_tokens = settings["attend_to_mask_tokens"]
        self.skip_punctuation = settings["skip_punctuation"]
        words = lm.spec.colbert.get("skiplist")
        self._skip = torch.tensor(_token_ids(tok, list(string.punctuation) if words is None else words),
                                  dtype=torch.long, device=lm.device)
        self.batch_size, self.token_budget = default_batching(lm.device, batch_size, token_budget)
        self.progress = progress
        self._model_defaults = {**stated, "projection": "auto" if checkpoint is not None else None}
        self._keep_runtime(device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget,
                           revision=revision, progress=progress, compile=compile or None)

    @property
    def name(self) -> str:
        return self.loaded.spec.name

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
            h = lm.model(input_ids=ids, attention_mask=attend).last_hidden_state.float()
            if self.head is not None:
                h = self.head(h)
            h = F.normalize(h, p=2, dim=-1)
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

    def to_record(self) -> dict[str, Any]:
        return {**self.loaded.info(), "encoder": "multivector", "dimension": self.dimension,
                "projection": self._projection_hash, "query_length": self.query_length,
                "document_max_length": self.document_max_length, "markers": list(self.markers),
                "augment_queries": self.augment_queries, "attend_to_mask_tokens": self.attend_to_mask_tokens,
                "skip_punctuation": self.skip_punctuation}

    @classmethod
    def record_arguments(cls, record: dict[str, Any]) -> dict[str, Any]:
        markers = record.get("markers") or [None, None]
        return {"query_length": record.get("query_length"), "document_max_length": record.get("document_max_length"),
                "query_marker": markers[0], "document_marker": markers[1],
                "augment_queries": record.get("augment_queries"),
                "attend_to_mask_tokens": record.get("attend_to_mask_tokens"),
                "skip_punctuation": record.get("skip_punctuation"),
                "projection": None if record.get("projection", "auto") is None else "auto"}

    def _unrecorded(self) -> dict[str, Any]:
        return {} if self._projection_given is None else {"projection": self._projection_given}


def _split_rows(out: tuple[torch.Tensor, torch.Tensor]) -> list[np.ndarray]:
    h, keep = out
    counts = keep.sum(1).cpu().numpy()
    vectors = h[keep].cpu().numpy()
    return np.split(vectors, np.cumsum(counts)[:-1])


def _token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Ids of the words that are tokens of the vocabulary (as PyLate and sentence-transformers read skiplists)."""
    out = set()
    for word in words:
        tid = tokenizer.convert_tokens_to_ids(word)
        if tid is not None and (tid != tokenizer.unk_token_id or word == tokenizer.unk_token):
            out.add(int(tid))
    return sorted(out)


def _linear_head(weight: torch.Tensor) -> tuple[torch.nn.Sequential, str]:
    """A bias-free linear projection [dim, hidden] and its hash."""
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    digest = "sha256:" + hashlib.sha256(weight.contiguous().numpy().tobytes()).hexdigest()[:24]
    return torch.nn.Sequential(linear).requires_grad_(False), digest


def _checkpoint_head(lm: Any) -> tuple[torch.nn.Sequential, str] | None:
    """The checkpoint's projection and its hash: its token-level Dense modules (PyLate, sentence-transformers),
    else a Stanford checkpoint's `linear.weight`, else None."""
    layers = [module for layer, module in zip(lm.spec.dense, lm.dense) if layer.tokens]
    if layers:
        modules = [m for layer in layers for m in layer]
        plain = len(layers) == 1 and layers[0][0].bias is None and isinstance(layers[0][1], torch.nn.Identity)
        h = hashlib.sha256()
        for m in modules:
            for p in m.parameters():
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
            if not plain:
                h.update(type(m).__name__.encode())
        return torch.nn.Sequential(*modules), "sha256:" + h.hexdigest()[:24]
    weight = _load_linear(lm.spec.transformer_path)
    return None if weight is None else _linear_head(weight.float())


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
