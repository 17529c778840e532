"""Cross-encoder reranking: any Hugging Face sequence-classification checkpoint scores (query, document) pairs.

Scores equal sentence-transformers' `CrossEncoder.predict` (same activation, same truncation of the document
side) while running faster: the pairs are tokenised together, sorted by token length, packed into batches by
a token budget and padded per batch; on CUDA in half precision with SDPA attention, the next batches prepared
in a background thread (rankstack.encoders.batching.run_batches). For BERT-family classifiers, the last layer
is computed for the [CLS] token only, the one the classification head reads (checked on a probe at load time).
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rankstack.encoders.batching import Batch, pad, run_batches
from rankstack.encoders.loading import ModelSpec, PathLike, activation_module, read_json, weights_id
from rankstack.errors import InputError, RankstackError
from rankstack.rerank.cache import ScoreCache
from rankstack.rerank.model import ModelPairReranker
from rankstack.rerank.texts import Texts

log = logging.getLogger(__name__)

#: Each row's first-segment length rides to the device in the high bits of its first token id (see `_tokenize`).
_SEGMENT_SHIFT = 32
_ID_MASK = (1 << _SEGMENT_SHIFT) - 1
#: Classifiers whose head reads only the first token of the last layer (candidates for the [CLS]-only last layer).
_FIRST_TOKEN_HEADS = {"BertForSequenceClassification", "RobertaForSequenceClassification",
                      "XLMRobertaForSequenceClassification", "ElectraForSequenceClassification",
                      "CamembertForSequenceClassification"}


class CrossEncoder(ModelPairReranker):
    """Rerank the top `depth` candidates of each query with a cross-encoder; the rest keep their order below.

    `model`: a hub id or a local directory (a transformers or sentence-transformers CrossEncoder folder).
    `texts`: where document texts come from: a CorpusTexts, an IndexTexts, or a path (corpus file or index
    directory). `activation`: None applies what the checkpoint says, as sentence-transformers does (its saved
    `activation_fn`; else sigmoid for one label, identity for more); or "identity", "sigmoid", "tanh", "softmax".
    Models with several labels are scored by the column `label` (default 1). `max_length`: tokens per pair
    (default: the model's); longer pairs lose the end of the document (the query too, if alone too long).
    `batch_size` pairs and `token_budget` padded tokens per batch at most (defaults: 32 and 2,048 on CPU; 256
    and 65,536 on CUDA). `dtype`: fp32 on CPU, fp16 on CUDA by default; "bf16" also; "int8" on CPU: dynamic int8
    quantisation of the Linear layers (rankstack.encoders.loading.quantize_int8; faster, scores approximate).
    `threads`: CPU threads while scoring. `compile=True`: the model compiled by torch.compile
    (rankstack.encoders.loading.compile_model; the same scores to float rounding, faster once compiled).
    `cache`: True keeps scores in memory, keyed by (model, query, document text); a path also keeps them in a
    SQLite file; False disables it. `backend`: "torch" ("onnx" is not implemented). `progress`: None shows a
    progress bar only on a terminal.
    """

    def __init__(self, model: PathLike, texts: Texts | PathLike | None = None, *, depth: int | None = 100,
                 max_length: int | None = None, batch_size: int | None = None, token_budget: int | None = None,
                 device: str | None = None, dtype: str | None = None, threads: int | None = None,
                 activation: str | None = None, label: int | None = None, cache: bool | PathLike = True,
                 backend: str = "torch", revision: str | None = None, progress: bool | None = None,
                 compile: bool = False):
        if backend == "onnx":
            raise RankstackError(
                "backend='onnx' is not implemented: the TorchScript ONNX export of transformers' models fixes parts "
                "of the attention-mask logic at trace time, and ONNX Runtime measured no faster than torch on CPU "
                "here (1.0-1.1x, same GEMM-bound work). Use backend='torch' (with threads=N on CPU).")
        if backend != "torch":
            raise InputError(f"unknown backend {backend!r} (expected 'torch')")
        self._setup(model, "sequence-classification", texts, depth, threads, batch_size, token_budget, progress,
                    device=device, dtype=dtype, max_length=max_length, revision=revision)
        self._keep_args(model=model, depth=depth, max_length=max_length, batch_size=batch_size,
                        token_budget=token_budget, device=device, dtype=dtype, threads=threads, activation=activation,
                        label=label, cache=cache, backend=backend, revision=revision, compile=compile)
        self.spec, self.dtype = self.loaded.spec, self.loaded.dtype
        self.tokenizer, self.model, self.max_length = self.loaded.tokenizer, self.loaded.model, self.loaded.max_length
        self.num_labels = int(self.model.config.num_labels)
        self.label = 0 if self.num_labels == 1 else (1 if label is None else label)
        if not 0 <= self.label < self.num_labels:
            raise InputError(f"label {label} is out of range: the model has {self.num_labels} labels")
        self.activation_name = activation or checkpoint_activation(self.spec, self.num_labels)
        self._activation = activation_module(self.activation_name)
        self._segments = "token_type_ids" in self.tokenizer.model_input_names and \
            getattr(self.model.config, "type_vocab_size", 2) > 1
        self._pair_specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        self._positions = torch.arange(self.max_length, device=self.device)
        self.first_token_last_layer = _install_first_token_layer(self)
        if compile:  # after the layer swap, which probes the eager model
            self.loaded.compile()
        model_key = "|".join(map(str, (weights_id(self.spec), self.max_length, self.activation_name, self.label,
                                       self.loaded.precision)))
        self.cache = None if cache is False or cache is None else \
            ScoreCache(model_key, None if cache is True else cache)

    # --- scoring ---------------------------------------------------------------------------------------------

    def _score_batches(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self._thread_count():
            yield from run_batches(pairs, self._tokenize, self._forward, _to_numpy, device=self.device,
                                   pad_id=self.tokenizer.pad_token_id or 0, batch_size=self.batch_size,
                                   token_budget=self.token_budget, progress=self.progress, desc="reranking")

    def _tokenize(self, pairs: list[tuple[str, str]]) -> list[list[int]]:
        """Token ids of each pair, the document side truncated (both sides where the query alone is too long).

        With segment (token type) ids, these are 0 up to some position and 1 after it: that position is added
        to the first id, shifted left by 32 bits, and `_forward` rebuilds the ids from it (no per-token work).
        """
        tok, n = self.tokenizer, self.max_length
        queries = [q for q, _ in pairs]
        unique = list(dict.fromkeys(queries))
        lengths = tok(unique, add_special_tokens=False, truncation=True, max_length=n, return_attention_mask=False,
                      return_token_type_ids=False)["input_ids"]
        room = {q: n - self._pair_specials - len(ids) for q, ids in zip(unique, lengths)}  # tokens left for documents
        out: list[list[int]] = [[] for _ in pairs]
        for strategy, fits in (("only_second", True), ("longest_first", False)):
            rows = [i for i, q in enumerate(queries) if (room[q] >= 1) == fits]
            if not rows:
                continue
            enc = tok([queries[i] for i in rows], [pairs[i][1] for i in rows], truncation=strategy, max_length=n,
                      return_attention_mask=False, return_token_type_ids=self._segments)
            if self._segments:
                for ids, types in zip(enc["input_ids"], enc["token_type_ids"]):
                    ids[0] |= (types.index(1) if 1 in types else len(types)) << _SEGMENT_SHIFT
            for i, ids in zip(rows, enc["input_ids"]):
                out[i] = ids
        return out

    def _forward(self, b: Batch) -> torch.Tensor:
        ids, mask = b.input_ids, b.attention_mask
        inputs = {"attention_mask": self.loaded.attention_mask(mask, b.full)}
        if self._segments:
            first_segment = ids[:, 0] >> _SEGMENT_SHIFT
            ids = ids & _ID_MASK
            inputs["token_type_ids"] = (self._positions[:ids.shape[1]] >= first_segment[:, None]).long() * mask
        logits = self.model(input_ids=ids, **inputs).logits.float()
        return self._activation(logits)[:, self.label]

    # --- the stage -------------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What computes the scores: model, revision, length, activation, precision and device."""
        return {"model": self.spec.name, "revision": self.spec.revision, "max_length": self.max_length,
                "activation": self.activation_name, "label": self.label, "num_labels": self.num_labels,
                "dtype": self.loaded.precision, "device": str(self.device),
                "first_token_last_layer": self.first_token_last_layer}


# --- the checkpoint's activation ----------------------------------------------------------------------------


def checkpoint_activation(spec: ModelSpec, num_labels: int) -> str:
    """The activation sentence-transformers' CrossEncoder applies for a checkpoint, as a dotted path: its
    `config_sentence_transformers.json` `activation_fn` (sentence-transformers >= 5), `config.json`
    `sentence_transformers.activation_fn` (4.x) or `sbert_ce_default_activation_function` (< 4); else sigmoid for
    one label, identity for more. Paths outside torch are skipped, as sentence-transformers does without
    trust_remote_code."""
    st = read_json(spec.path / "config_sentence_transformers.json", {})
    cfg = read_json(spec.transformer_path / "config.json", {})
    st_cfg = cfg.get("sentence_transformers")
    for path in (st.get("activation_fn"), st_cfg.get("activation_fn") if isinstance(st_cfg, dict) else None,
                 cfg.get("sbert_ce_default_activation_function")):
        if isinstance(path, str) and path:
            if path.startswith("torch."):
                return path
            log.warning("%s: activation %r is not a torch one and is not imported; using the default", spec.path, path)
    return ("torch.nn.modules.activation.Sigmoid" if num_labels == 1 else "torch.nn.modules.linear.Identity")


# --- the [CLS]-only last layer -------------------------------------------------------------------------------


class _FirstTokenLayer(torch.nn.Module):
    """A BERT-style encoder layer computed for the first token only: keys and values from every token; query,
    attention output and feed-forward for the first. Its output, [batch, 1, hidden], is all the head reads."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any,
                **kwargs: Any) -> torch.Tensor:
        layer = self.layer
        att = layer.attention.self
        b = hidden_states.shape[0]
        first = hidden_states[:, :1]
        heads = (b, -1, att.num_attention_heads, att.attention_head_size)
        q = att.query(first).view(heads).transpose(1, 2)
        k = att.key(hidden_states).view(heads).transpose(1, 2)
        v = att.value(hidden_states).view(heads).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = attention_mask[:, :, :1]
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, scale=att.scaling)
        attended = layer.attention.output(context.transpose(1, 2).reshape(b, 1, -1), first)
        return layer.output(layer.intermediate(attended), attended)


def _install_first_token_layer(ce: CrossEncoder) -> bool:
    """Swap the last encoder layer for a _FirstTokenLayer where the head reads only [CLS] and a probe batch
    scores the same (else leave the model as it was). Returns whether it was swapped."""
    model = ce.model
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if type(model).__name__ not in _FIRST_TOKEN_HEADS or not isinstance(layers, torch.nn.ModuleList) or \
            getattr(model.config, "position_embedding_type", "absolute") != "absolute" or model.config.is_decoder:
        return False
    last = layers[-1]
    if not all(hasattr(last.attention.self, a) for a in ("query", "key", "value", "scaling", "num_attention_heads")):
        return False
    probe = [("what is a cross-encoder", "A model that reads the query and the document together. " * 4),
             ("short", "text"), ("a query " * 6, "[SEP] a document with a separator token")]
    ids, mask = pad(ce._tokenize(probe), ce.tokenizer.pad_token_id or 0)
    batch = Batch(np.arange(len(probe)), torch.from_numpy(ids).to(ce.device), torch.from_numpy(mask).to(ce.device),
                  full=False)
    with torch.inference_mode():
        full = ce._forward(batch)
        layers[-1] = _FirstTokenLayer(last)
        try:
            fast = ce._forward(batch)
            ok = bool(torch.allclose(full, fast, rtol=1e-3, atol=1e-4 if ce.loaded.exact else 2e-2))
        except Exception as e:  # noqa: BLE001 - any failure means: keep the full layer
            log.debug("first-token last layer not used: %s", e)
            ok = False
    if not ok:
        layers[-1] = last
    return ok


# --- helpers -------------------------------------------------------------------------------------------------


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()
