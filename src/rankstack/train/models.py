"""Trainable rankers, each started from any transformers or sentence-transformers checkpoint and saved in a layout
that both sentence-transformers and rankstack's stages load:

- "cross-encoder": encoder + a new one-logit head; a transformers classifier folder; rankstack `rerank.CrossEncoder`,
  sentence-transformers `CrossEncoder`.
- "dense": encoder + pooling (+ L2 norm); a sentence-transformers folder; `encoders.DenseEncoder` / `Dense`,
  `SentenceTransformer`.
- "splade": masked-LM, max over tokens of log(1 + relu(logits)); a SparseEncoder folder; `encoders.SpladeEncoder` /
  `LearnedSparse`, `SparseEncoder`.
- "colbert": encoder + linear projection, L2 norm per token; a transformers folder whose weights hold
  `linear.weight` (Stanford ColBERT's key); `encoders.MultiVectorEncoder` / `LateInteraction`.

Each model tokenizes exactly as the rankstack class that loads it (same truncation, markers, prefixes, pooling),
so the scores seen in training are the scores seen in search.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from rankstack.encoders.batching import pad
from rankstack.encoders.dense import pool
from rankstack.encoders.loading import LoadedModel, load_model, resolve_model
from rankstack.errors import InputError, RankstackError

KINDS = ("cross-encoder", "dense", "splade", "colbert")
SIGMOID = "torch.nn.modules.activation.Sigmoid"


class Ranker(torch.nn.Module):
    """What the trainer needs of a model. Bi-encoders implement `encode_queries`, `encode_documents` and
    `similarity`; cross-encoders `score_pairs`."""

    kind: str = ""
    bi_encoder: bool = True
    #: InfoNCE / KL temperature that suits the model's score scale (cosine similarities need a small one).
    default_temperature: float = 1.0
    #: name prefixes (as in named_parameters) of the layers new to the task, trained at `head_learning_rate`
    head_prefixes: tuple[str, ...] = ()

    def encode_queries(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def encode_documents(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def similarity(self, queries: Any, documents: Any) -> torch.Tensor:
        """Scores [n queries, n documents] of every query against every document."""
        raise NotImplementedError

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def _trainable(lm: LoadedModel) -> LoadedModel:
    lm.model.float().train().requires_grad_(True)
    return lm


def _batch(ids: list[list[int]], pad_id: int, device: torch.device, width: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids, mask = pad(ids, pad_id, width)
    return torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)


def _copy_tokenizer(tokenizer: Any, path: Path, max_length: int | None = None) -> None:
    tokenizer.save_pretrained(path)
    if max_length is not None:  # the length both libraries read for a plain transformers folder
        cfg_file = path / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        cfg["model_max_length"] = int(max_length)
        cfg_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _st_version() -> dict[str, str]:
    import transformers
    return {"sentence_transformers": "5.0.0", "transformers": transformers.__version__,
            "pytorch": torch.__version__}


# --- cross-encoder -----------------------------------------------------------------------------------------


class CrossEncoderModel(Ranker):
    """A sequence classifier with one logit, from any encoder checkpoint (a new head where it has none).

    Pairs are tokenized as `rankstack.rerank.CrossEncoder` does: query and document together, the document
    truncated to fit `max_length` tokens (both sides when the query alone is too long). `max_length` defaults to
    the checkpoint's (at most 512) and is saved as the model's length. Where the checkpoint has no classifier, the
    new one and the pooler before it take the trainer's `head_learning_rate` (`head_prefixes`)."""

    kind, bi_encoder = "cross-encoder", False

    def __init__(self, start: str | os.PathLike, *, max_length: int | None = None, device: str | None = None):
        super().__init__()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.spec = resolve_model(start)
        path = str(self.spec.transformer_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model, loading = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, dtype=torch.float32, output_loading_info=True)
        except (OSError, ValueError, KeyError) as e:
            raise RankstackError(f"cannot start a cross-encoder from {path}: {e}") from e
        pos = getattr(self.model.config, "max_position_embeddings", None)
        if max_length is None:
            tok_max = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 1_000_000 else None
            max_length = min(x for x in (self.spec.max_length or tok_max, pos, 512) if x)
        if pos and max_length > pos:
            raise InputError(f"max_length={max_length} exceeds the model's {pos} positions")
        self.max_length = int(max_length)
        self.start = self.spec.name
        self.head_prefixes = _new_head(self.model, loading.get("missing_keys", ()))
        self.model.train()
        if device is not None:
            self.to(torch.device(device))

    def tokenize(self, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        queries, docs = [q for q, _ in pairs], [d for _, d in pairs]
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        lengths = self.tokenizer(queries, add_special_tokens=False, truncation=True, max_length=self.max_length,
                                 return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        fits = [self.max_length - specials - len(ids) >= 1 for ids in lengths]
        rows: list[dict[str, list[int]]] = [{} for _ in pairs]
        for strategy, wanted in (("only_second", True), ("longest_first", False)):
            index = [i for i, ok in enumerate(fits) if ok == wanted]
            if index:
                enc = self.tokenizer([queries[i] for i in index], [docs[i] for i in index], truncation=strategy,
                                     max_length=self.max_length)
                for j, i in enumerate(index):
                    rows[i] = {k: enc[k][j] for k in enc}
        width = max(len(r["input_ids"]) for r in rows)
        out = {}
        for key in rows[0]:
            fill = (self.tokenizer.pad_token_id or 0) if key == "input_ids" else 0
            out[key] = torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows], device=self.device)
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """Logits [n] of (query, document text) pairs."""
        return self.model(**self.tokenize(pairs)).logits[:, 0]

    def save(self, path: str | os.PathLike) -> Path:
        """A transformers classifier folder with sentence-transformers' CrossEncoder settings (sigmoid on the
        logit, `max_length` tokens)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = self.model.config
        if hasattr(config, "sbert_ce_default_activation_function"):  # a start checkpoint's own (< 4.0) setting
            del config.sbert_ce_default_activation_function
        config.sentence_transformers = {"activation_fn": SIGMOID}  # where every version looks first
        self.model.save_pretrained(path)
        _copy_tokenizer(self.tokenizer, path, self.max_length)
        _write_json(path / "config_sentence_transformers.json",
                    {"__version__": _st_version(), "model_type": "CrossEncoder", "activation_fn": SIGMOID,
                     "default_prompt_name": None, "prompts": {}})
        return path

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": str(self.start), "max_length": self.max_length,
                "activation": "sigmoid of one logit", "new_layers": [p.rstrip(".") for p in self.head_prefixes]}


def _new_head(model: torch.nn.Module, missing: Sequence[str]) -> tuple[str, ...]:
    """The parameter prefixes of a classifier built anew (its weights missing from the checkpoint) and, with it, of
    the encoder's pooler: the layer between [CLS] and the classifier, which a checkpoint without a classifier (a
    bi-encoder, a masked LM) never trained for scoring. all-MiniLM-L6-v2's squeezes [CLS] (RMS 0.36) to outputs of RMS
    0.06, so at the encoder's learning rate the new head's logits stay nearly equal (InfoNCE stuck at ln n)."""
    heads = [name for name, _ in model.named_modules() if name.split(".")[-1] == "classifier"]
    if not any(k == h or k.startswith(h + ".") for k in missing for h in heads):
        return ()  # a trained classifier (a cross-encoder checkpoint): fine-tuned at the encoder's rate
    poolers = [name for name, _ in model.named_modules() if name.split(".")[-1] == "pooler"]
    return tuple(f"model.{name}." for name in heads + poolers)


# --- dense bi-encoder --------------------------------------------------------------------------------------


class DenseModel(Ranker):
    """A dense bi-encoder: pooled token vectors (the checkpoint's pooling and normalisation, as DenseEncoder
    reads them; mean and none for a plain transformers model), dot-product similarity."""

    kind = "dense"

    def __init__(self, start: str | os.PathLike, *, max_length: int | None = None, pooling: str | None = None,
                 normalize: bool | None = None, device: str | None = None):
        super().__init__()
        self.lm = _trainable(load_model(start, task="base", device=device or "cpu", dtype="fp32"))
        self.encoder = self.lm.model  # registered, so that .parameters() and state_dict() see it
        spec = self.lm.spec
        self.start = spec.name
        self.pooling = pooling or spec.pooling or "mean"
        self.normalize = spec.normalize if normalize is None else bool(normalize)
        self.saved_length = spec.max_length or self.lm.max_length
        self.max_length = int(max_length or self.lm.max_length)
        prompts = spec.prompts
        self.query_prefix = prompts.get("query", "")
        self.document_prefix = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
        self.default_temperature = 0.05 if self.normalize else 1.0

    def _encode(self, texts: Sequence[str], prefix: str) -> torch.Tensor:
        texts = [prefix + t for t in texts]
        if self.lm.spec.do_lower_case:
            texts = [t.lower() for t in texts]
        ids, mask = _batch(self.lm.tokenize(texts, self.max_length), self.lm.tokenizer.pad_token_id or 0, self.device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        emb = pool(hidden, mask, self.pooling)
        return F.normalize(emb, p=2, dim=1) if self.normalize else emb

    def encode_queries(self, texts: Sequence[str]) -> torch.Tensor:
        return self._encode(texts, self.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> torch.Tensor:
        return self._encode(texts, self.document_prefix)

    def similarity(self, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        return queries @ documents.T

    def save(self, path: str | os.PathLike) -> Path:
        """A sentence-transformers folder: Transformer, Pooling (and Normalize) modules."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path)
        _copy_tokenizer(self.lm.tokenizer, path)
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
            (path / "2_Normalize").mkdir(exist_ok=True)
        _write_json(path / "modules.json", modules)
        _write_json(path / "sentence_bert_config.json", {"max_seq_length": int(self.saved_length),
                                                         "do_lower_case": bool(self.lm.spec.do_lower_case)})
        hidden = int(self.encoder.config.hidden_size)
        modes = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
        _write_json(path / "1_Pooling" / "config.json", {"word_embedding_dimension": hidden,
                                                         **{v: k == self.pooling for k, v in modes.items()},
                                                         "pooling_mode_mean_sqrt_len_tokens": False})
        _write_json(path / "config_sentence_transformers.json",
                    {"__version__": _st_version(), "prompts": dict(self.lm.spec.prompts),
                     "default_prompt_name": self.lm.spec.default_prompt_name, "similarity_fn_name": "dot"})
        return path

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": str(self.start), "pooling": self.pooling, "normalize": self.normalize,
                "max_length": self.max_length, "similarity": "dot product"}


# --- SPLADE ------------------------------------------------------------------------------------------------


class SpladeModel(Ranker):
    """SPLADE from a masked-LM checkpoint: max over tokens of log(1 + relu(logits)), dot-product similarity."""

    kind = "splade"

    def __init__(self, start: str | os.PathLike, *, max_length: int | None = None,
                 query_max_length: int | None = None, device: str | None = None):
        super().__init__()
        self.lm = _trainable(load_model(start, task="mlm", device=device or "cpu", dtype="fp32"))
        self.mlm = self.lm.model
        self.start = self.lm.spec.name
        self.saved_length = self.lm.spec.max_length
        self.max_length = int(max_length or self.lm.max_length)
        self.query_max_length = int(query_max_length or self.max_length)

    def _encode(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        ids, mask = _batch(self.lm.tokenize(list(texts), max_length), self.lm.tokenizer.pad_token_id or 0,
                           self.device)
        logits = self.mlm(input_ids=ids, attention_mask=mask).logits
        best = logits.masked_fill((mask == 0)[..., None], float("-inf")).amax(1)
        return torch.log1p(torch.relu(best))

    def encode_queries(self, texts: Sequence[str]) -> torch.Tensor:
        return self._encode(texts, self.query_max_length)

    def encode_documents(self, texts: Sequence[str]) -> torch.Tensor:
        return self._encode(texts, self.max_length)

    def similarity(self, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        return queries @ documents.T

    def save(self, path: str | os.PathLike) -> Path:
        """A sentence-transformers SparseEncoder folder: MLMTransformer and SpladePooling (max, relu)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.mlm.save_pretrained(path)
        _copy_tokenizer(self.lm.tokenizer, path)
        _write_json(path / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling",
             "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}])
        st_cfg: dict[str, Any] = {"do_lower_case": bool(self.lm.spec.do_lower_case)}
        if self.saved_length:
            st_cfg["max_seq_length"] = int(self.saved_length)
        _write_json(path / "sentence_bert_config.json", st_cfg)
        _write_json(path / "1_SpladePooling" / "config.json",
                    {"pooling_strategy": "max", "activation_function": "relu",
                     "word_embedding_dimension": int(self.lm.vocab_size)})
        _write_json(path / "config_sentence_transformers.json",
                    {"__version__": _st_version(), "model_type": "SparseEncoder",
                     "prompts": {"query": "", "document": ""}, "default_prompt_name": None,
                     "similarity_fn_name": "dot"})
        return path

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": str(self.start), "max_length": self.max_length,
                "query_max_length": self.query_max_length, "pooling": "max of log(1 + relu(logits))"}


# --- ColBERT -----------------------------------------------------------------------------------------------


class ColBERTModel(Ranker):
    """A ColBERT head over an encoder: token vectors projected to `dimension` (a new linear layer, no bias) and
    L2-normalised; MaxSim similarity. Queries and documents are tokenized as `MultiVectorEncoder` does with its
    defaults: [CLS] marker tokens [SEP], queries padded with [MASK] to `query_length` (the real tokens not attending
    to them), punctuation dropped from documents. `freeze_encoder` trains the projection only."""

    kind = "colbert"

    def __init__(self, start: str | os.PathLike, *, dimension: int = 128, query_length: int = 32,
                 document_max_length: int = 180, freeze_encoder: bool = False, device: str | None = None,
                 query_marker: str = "[unused0]", document_marker: str = "[unused1]"):
        super().__init__()
        self.lm = _trainable(load_model(start, task="base", device=device or "cpu", dtype="fp32"))
        self.encoder = self.lm.model
        self.start = self.lm.spec.name
        tok = self.lm.tokenizer
        hidden = int(self.encoder.config.hidden_size)
        self.linear = torch.nn.Linear(hidden, dimension, bias=False).to(self.lm.device)
        self.dimension, self.query_length, self.document_max_length = dimension, query_length, document_max_length
        self.markers = (query_marker, document_marker)
        ids = tok.convert_tokens_to_ids(list(self.markers))
        if any(i is None or i == tok.unk_token_id for i in ids):
            raise InputError(f"marker tokens {self.markers} are not in the tokenizer's vocabulary")
        self._q_marker, self._d_marker = ids
        punct = tok(list(string.punctuation), add_special_tokens=False)["input_ids"]
        self.register_buffer("_skip", torch.tensor(sorted({p[0] for p in punct if len(p) == 1}),
                                                   device=self.lm.device), persistent=False)
        self.freeze_encoder = freeze_encoder
        self.head_prefixes = ("linear.",)
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        self.default_temperature = 1.0

    def _ids(self, texts: Sequence[str], marker: int, max_length: int) -> list[list[int]]:
        tok = self.lm.tokenizer
        ids = self.lm.tokenize(list(texts), max_length - 3, add_special_tokens=False)
        return [[tok.cls_token_id, marker, *t, tok.sep_token_id] for t in ids]

    def _vectors(self, ids: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=ids, attention_mask=attend).last_hidden_state
        return F.normalize(self.linear(h), p=2, dim=-1)

    def encode_queries(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors [n, query_length, dim], mask [n, query_length]): every position counts, [MASK]s included."""
        tok = self.lm.tokenizer
        ids, mask = _batch(self._ids(texts, self._q_marker, self.query_length), tok.mask_token_id, self.device,
                           self.query_length)
        return self._vectors(ids, mask), torch.ones_like(mask, dtype=torch.bool)

    def encode_documents(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors [n, length, dim], mask [n, length]): the kept tokens (no padding, no punctuation)."""
        ids, mask = _batch(self._ids(texts, self._d_marker, self.document_max_length),
                           self.lm.tokenizer.pad_token_id or 0, self.device)
        return self._vectors(ids, mask), mask.bool() & ~torch.isin(ids, self._skip)

    def similarity(self, queries: tuple[torch.Tensor, torch.Tensor], documents: tuple[torch.Tensor, torch.Tensor]
                   ) -> torch.Tensor:
        """MaxSim: for each query token its best document token's dot product, summed over the query tokens."""
        (q, qmask), (d, dmask) = queries, documents
        sim = torch.einsum("aid,bjd->abij", q, d)
        sim = sim.masked_fill(~dmask[None, :, None, :], float("-inf")).amax(-1)
        return (sim * qmask[:, None, :]).sum(-1)

    def save(self, path: str | os.PathLike) -> Path:
        """A transformers folder whose weights also hold the projection as `linear.weight` [dim, hidden] (the
        Stanford ColBERT checkpoint key), which MultiVectorEncoder reads."""
        from safetensors.torch import load_file, save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path)
        _copy_tokenizer(self.lm.tokenizer, path)
        weights = path / "model.safetensors"
        if not weights.exists():
            raise RankstackError(f"{path}: expected model.safetensors after saving the encoder")
        tensors = load_file(str(weights))
        tensors["linear.weight"] = self.linear.weight.detach().float().cpu().contiguous()
        tmp = weights.with_name("model.safetensors.tmp")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, weights)
        _write_json(path / "colbert_config.json", {"dim": self.dimension, "query_maxlen": self.query_length,
                                                   "doc_maxlen": self.document_max_length,
                                                   "query_token_id": self.markers[0], "doc_token_id": self.markers[1],
                                                   "mask_punctuation": True, "attend_to_mask_tokens": False,
                                                   "similarity": "cosine"})
        return path

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": str(self.start), "dimension": self.dimension,
                "query_length": self.query_length, "document_max_length": self.document_max_length,
                "freeze_encoder": self.freeze_encoder}


def build_model(kind: str, start: str | os.PathLike, seed: int = 0, **options: Any) -> Ranker:
    """A trainable model of `kind` (one of KINDS) started from a checkpoint; `options` go to its class. New layers
    (a classifier head, a projection) are initialised from `seed` (torch's global generator is left as it was)."""
    classes = {"cross-encoder": CrossEncoderModel, "dense": DenseModel, "splade": SpladeModel,
               "colbert": ColBERTModel}
    if kind not in classes:
        raise InputError(f"unknown model kind {kind!r} (expected one of {', '.join(KINDS)})")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return classes[kind](start, **options)
    except TypeError as e:
        raise InputError(f"bad options for a {kind} model: {e}") from None

