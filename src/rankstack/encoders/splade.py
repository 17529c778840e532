"""SPLADE learned-sparse encoder: max over tokens of log(1 + relu(MLM logits)), one weight per vocabulary term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.encoders.base import Encoder
from rankstack.encoders.batching import Batch, check_texts, default_batching, run_batches
from rankstack.encoders.loading import (LoadedModel, ModelSpec, PathLike, compile_model, load_model, model_max_length,
                                       recorded_spec)
from rankstack.errors import InputError

OUTPUTS = ("csr", "pairs", "dict")
ACTIVATIONS = ("relu", "log1p_relu")


@dataclass
class _Side:
    lm: LoadedModel
    max_length: int
    top_k: int | None
    base: Any            # the transformer without its MLM head
    head: Callable | None  # hidden [.., H] -> logits [.., V]; None: run the whole model


class SpladeEncoder(Encoder):
    """Encode texts into sparse vocabulary-sized vectors with a masked-language model (SPLADE max pooling).

    Pooling takes the masked max of the logits first and applies log1p(relu(.)) to that [B, V] result only
    (the same value, since log1p∘relu is monotone); the MLM head runs over slices of the sequence so that at
    most `logits_budget_mb` of logits exist at once. `query_model` gives queries their own model; the max
    lengths default to the model's; `query_top_k` / `document_top_k` keep only the k heaviest terms;
    `activation="log1p_relu"` adds a second log1p (OpenSearch's models). `compile=True`: the models compiled by
    torch.compile (rankstack.encoders.loading.compile_model).

    Outputs (`output=`): "csr" a scipy.sparse.csr_matrix [n, vocab] (float32, sorted column indices), "pairs" a list
    of (int32 indices, float32 weights), "dict" a list of {token: weight}.
    """

    kind = "splade"

    def __init__(self, model: PathLike | ModelSpec, *, query_model: PathLike | ModelSpec | None = None,
                 query_max_length: int | None = None,
                 document_max_length: int | None = None, query_top_k: int | None = None,
                 document_top_k: int | None = None, activation: str = "relu", device: str | None = None,
                 dtype: str | None = None, batch_size: int | None = None, token_budget: int | None = None,
                 logits_budget_mb: int = 256, revision: str | None = None, progress: bool | None = None,
                 compile: bool = False):
        if activation not in ACTIVATIONS:
            raise InputError(f"unknown activation {activation!r} (expected one of {', '.join(ACTIVATIONS)})")
        for k in (query_top_k, document_top_k):
            if k is not None and k < 1:
                raise InputError(f"top_k must be at least 1, got {k}")
        doc_lm = load_model(model, task="mlm", device=device, dtype=dtype, max_length=document_max_length,
                            revision=revision, compile=compile)
        query_lm = doc_lm if query_model is None else load_model(query_model, task="mlm", device=device, dtype=dtype,
                                                                 compile=compile)
        if query_lm.vocab_size != doc_lm.vocab_size:
            raise InputError(f"query model vocabulary ({query_lm.vocab_size}) differs from the document model's "
                             f"({doc_lm.vocab_size})")
        if query_max_length and query_max_length > query_lm.max_length:
            raise InputError(f"query_max_length={query_max_length} exceeds the query model's {query_lm.max_length}")
        self.documents = _side(doc_lm, doc_lm.max_length, document_top_k)
        self.queries = _side(query_lm, query_max_length or query_lm.max_length, query_top_k)
        self.activation = activation
        self.logits_budget = logits_budget_mb << 20
        self.batch_size, self.token_budget = default_batching(doc_lm.device, batch_size, token_budget)
        self.progress = progress
        self.vocab_size = doc_lm.vocab_size
        self._vocab: list[str] | None = None
        self._model_defaults = {"document_max_length": _natural_length(doc_lm), "document_top_k": None,
                                "activation": "relu", "query_max_length": _natural_length(query_lm),
                                "query_top_k": None, "query_model": None}
        self._keep_runtime(device=device, dtype=dtype, batch_size=batch_size, token_budget=token_budget,
                           logits_budget_mb=None if logits_budget_mb == 256 else logits_budget_mb, revision=revision,
                           progress=progress, compile=compile or None)

    @property
    def name(self) -> str:
        return self.documents.lm.spec.name

    def encode_queries(self, texts: Sequence[str], *, output: str = "csr") -> Any:
        """Sparse query vectors (see the class docstring for `output`)."""
        return self._encode(texts, self.queries, output)

    def encode_documents(self, texts: Sequence[str], *, output: str = "csr") -> Any:
        """Sparse document vectors (see the class docstring for `output`)."""
        return self._encode(texts, self.documents, output)

    def vocabulary(self) -> list[str]:
        """Token strings by id."""
        if self._vocab is None:
            self._vocab = self.documents.lm.tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
        return self._vocab

    def _encode(self, texts: Sequence[str], side: _Side, output: str) -> Any:
        if output not in OUTPUTS:
            raise InputError(f"unknown output {output!r} (expected one of {', '.join(OUTPUTS)})")
        texts = check_texts(texts)
        lm = side.lm

        def tokenize(chunk: list[str]) -> list[list[int]]:
            return lm.tokenize(chunk, side.max_length)

        parts = list(run_batches(texts, tokenize, lambda b: self._forward(side, b), _sparsify,
                                 device=lm.device, pad_id=lm.tokenizer.pad_token_id or 0, batch_size=self.batch_size,
                                 token_budget=self.token_budget, progress=self.progress))
        return format_sparse(assemble_csr(parts, len(texts), self.vocab_size), output, self.vocabulary)

    def _forward(self, side: _Side, b: Batch) -> torch.Tensor:
        ids, mask = b.input_ids, b.attention_mask
        pad = (mask == 0)[..., None]
        model_mask = side.lm.attention_mask(mask, b.full)
        if side.head is None:  # an architecture whose head we cannot split off: whole logits at once
            logits = side.lm.model(input_ids=ids, attention_mask=model_mask).logits
            best = logits.masked_fill_(pad, float("-inf")).amax(1)
        else:
            hidden = side.base(input_ids=ids, attention_mask=model_mask).last_hidden_state
            rows, length, _ = hidden.shape
            step = max(1, self.logits_budget // (rows * self.vocab_size * hidden.element_size()))
            best = None
            for s in range(0, length, step):
                logits = side.head(hidden[:, s:s + step]).masked_fill_(pad[:, s:s + step], float("-inf"))
                chunk_max = logits.amax(1)
                best = chunk_max if best is None else torch.maximum(best, chunk_max, out=best)
        weights = torch.log1p(torch.relu(best))
        if self.activation == "log1p_relu":
            weights = torch.log1p(weights)
        if side.top_k is not None and side.top_k < weights.shape[1]:
            values, indices = weights.topk(side.top_k, dim=1)
            weights = torch.zeros_like(weights).scatter_(1, indices, values)
        return weights

    def to_record(self) -> dict[str, Any]:
        q = self.queries
        return {**self.documents.lm.info(), "encoder": "splade", "activation": self.activation,
                "dimension": self.vocab_size, "document_max_length": self.documents.max_length,
                "document_top_k": self.documents.top_k, "query_max_length": q.max_length, "query_top_k": q.top_k,
                "query_model": None if q.lm is self.documents.lm else q.lm.info()}

    @classmethod
    def record_arguments(cls, record: dict[str, Any]) -> dict[str, Any]:
        query = record.get("query_model")
        return {**{key: record.get(key) for key in ("document_max_length", "document_top_k", "query_max_length",
                                                    "query_top_k")},
                "activation": record.get("activation", "relu"), "query_model": query["model"] if query else None}

    @classmethod
    def from_record(cls, record: dict[str, Any], **options: Any) -> SpladeEncoder:
        """As Encoder.from_record; a separate query model is found as the document model is (recorded_spec)."""
        if record.get("query_model") and "query_model" not in options:
            options["query_model"] = recorded_spec(record["query_model"])
        return super().from_record(record, **options)


def _natural_length(lm: LoadedModel) -> int:
    return model_max_length(lm.spec, lm.tokenizer, lm.model.config, None)


def _side(lm: LoadedModel, max_length: int, top_k: int | None) -> _Side:
    model = lm.model
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return _Side(lm, max_length, top_k, model, None)
    if hasattr(model, "cls"):            # BERT
        head = model.cls
    elif hasattr(model, "lm_head"):      # RoBERTa, XLM-R, ModernBERT-like
        head = model.lm_head
    elif hasattr(model, "vocab_projector"):  # DistilBERT
        def head(h: torch.Tensor) -> torch.Tensor:
            return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(h))))
    else:
        return _Side(lm, max_length, top_k, model, None)
    if lm.compiled:  # the base is called on its own, not through the compiled model
        compile_model(base, lm.device)
    return _Side(lm, max_length, top_k, base, head)


def _sparsify(weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row nonzero counts, column ids (int32, ascending per row) and float32 weights, on the host."""
    rows, cols = weights.nonzero(as_tuple=True)
    values = weights[rows, cols].float()
    counts = torch.bincount(rows, minlength=weights.shape[0])
    return counts.cpu().numpy(), cols.to(torch.int32).cpu().numpy(), values.cpu().numpy()


def assemble_csr(parts: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]], n: int,
                 n_cols: int) -> sp.csr_matrix:
    """A CSR matrix of n rows from batches of (row positions, (counts, columns, values))."""
    nnz = np.zeros(n, dtype=np.int64)
    for positions, (counts, _, _) in parts:
        nnz[positions] = counts
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nnz, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1], dtype=np.float32)
    for positions, (counts, cols, values) in parts:
        local_start = np.cumsum(counts) - counts
        dest = np.repeat(indptr[positions] - local_start, counts) + np.arange(len(cols))
        indices[dest] = cols
        data[dest] = values
    return sp.csr_matrix((data, indices, indptr), shape=(n, n_cols))


def format_sparse(matrix: sp.csr_matrix, output: str, vocabulary: Callable[[], list[str]]) -> Any:
    """A CSR matrix as itself ("csr"), (indices, weights) pairs ("pairs") or {token: weight} dicts ("dict")."""
    if output == "csr":
        return matrix
    ptr = matrix.indptr
    pairs = [(matrix.indices[ptr[i]:ptr[i + 1]], matrix.data[ptr[i]:ptr[i + 1]]) for i in range(matrix.shape[0])]
    if output == "pairs":
        return pairs
    vocab = vocabulary()
    return [{vocab[j]: float(w) for j, w in zip(idx.tolist(), val.tolist())} for idx, val in pairs]
