"""The one model loader: a model name (rankstack.encoders.names: hub id, folder, `.gguf` file, "package:NAME") is
read into a ModelSpec (what its sentence-transformers modules and configs say, without loading weights) and
loaded for a task: encoders ('base', 'mlm'), cross-encoders ('sequence-classification') and generative rerankers
('generative': causal or encoder-decoder), all with one device and precision rule (rankstack.devices) and one
maximum-length rule. The record check is rankstack.records (re-exported here).

sentence-transformers modules read: Transformer (and MLMTransformer), Pooling (cls, mean, max, lasttoken;
`include_prompt`), Dense (with its activation; on the pooled vector, or on token vectors for ColBERT models),
Normalize, MultiVectorMask (ColBERT skiplists), SpladePooling; `truncate_dim` (Matryoshka) and the prompts from
config_sentence_transformers.json; ColBERT settings from PyLate's config, sentence-transformers' multi-vector
layout, or a Stanford checkpoint's artifact.metadata. Any other module is refused, naming it.

This module imports torch and transformers only inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rankstack.devices import cpu_has_bf16_units, select_device, select_dtype  # noqa: F401 (select_dtype re-exported)
from rankstack.encoders.names import WEIGHT_FILES, is_commit, locate
from rankstack.errors import InputError, RankstackError
from rankstack.records import check_compatible  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
#: Files whose content identifies a model (with the weights' names and sizes): hashed into `content_hash`.
IDENTITY_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                  "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "idf.json")
#: What `load_model` loads, by task.
TASKS = ("base", "mlm", "sequence-classification", "generative")
POOLINGS = ("mean", "cls", "max", "lasttoken")
SUPPORTED_MODULES = ("Transformer", "MLMTransformer", "Pooling", "Dense", "Normalize", "MultiVectorMask",
                     "SpladePooling")
_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
                 "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
#: PyLate's top-level config keys (config_sentence_transformers.json) and the ColBERT settings they give.
_PYLATE_KEYS = {"query_prefix": "query_marker", "document_prefix": "document_marker", "query_length": "query_length",
                "document_length": "document_max_length", "attend_to_expansion_tokens": "attend_to_mask_tokens",
                "do_query_expansion": "augment_queries", "skiplist_words": "skiplist"}
#: Stanford ColBERT's artifact.metadata keys and the ColBERT settings they give.
_STANFORD_KEYS = {"query_token_id": "query_marker", "doc_token_id": "document_marker", "query_maxlen": "query_length",
                  "doc_maxlen": "document_max_length", "attend_to_mask_tokens": "attend_to_mask_tokens"}
#: Named activations (cross-encoders); checkpoints name theirs by dotted torch path.
ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax")
#: Quantised precisions (CPU only; an explicit choice, never a default): "int8" quantises the weights of every
#: Linear layer to int8 per output channel and each batch's activations to int8 on the fly (dynamic quantisation).
QUANTIZED = ("int8",)


@dataclass
class DenseLayer:
    """A sentence-transformers Dense module: activation(x W^T + b), on the pooled vector or on token vectors."""

    path: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str   # a dotted torch path, e.g. "torch.nn.modules.activation.Tanh"
    tokens: bool      # applies to token vectors (ColBERT models), not to the pooled sentence vector

    def describe(self) -> dict[str, Any]:
        """What a model record says about the layer (its weights are in the model's content hash)."""
        return {"in": self.in_features, "out": self.out_features, "bias": self.bias,
                "activation": self.activation.rsplit(".", 1)[-1]}


@dataclass
class ModelSpec:
    """What a model directory says about itself, read without loading any weights."""

    name: str                   # as the caller gave it: a hub id, a path, a .gguf file or package:NAME
    path: Path                  # the local directory (a hub snapshot for hub ids)
    commit: str | None          # hub commit hash, None for a local directory
    layout: str                 # "sentence-transformers" or "transformers"
    transformer_path: Path      # folder holding config.json and the weights
    pooling: str | None = None  # from the Pooling module
    include_prompt: bool = True  # the Pooling module pools the prompt's tokens too
    normalize: bool = False     # a Normalize module follows the pooling (and Dense layers)
    dense: list[DenseLayer] = field(default_factory=list)
    truncate_dim: int | None = None
    max_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    colbert: dict[str, Any] = field(default_factory=dict)  # ColBERT settings the checkpoint states
    content_hash: str = ""

    @property
    def revision(self) -> str:
        """The hub commit when downloaded, else the content hash."""
        return self.commit or self.content_hash


def resolve_model(name_or_path: PathLike, *, revision: str | None = None, cache_dir: PathLike | None = None) -> ModelSpec:
    """Find a model by name (rankstack.encoders.names) and read its spec.

    Raises InputError for a name that is not a model, RankstackError when a hub id cannot be fetched or a
    module is not supported.
    """
    name = os.fspath(name_or_path)
    path, commit = locate(name, revision=revision, cache_dir=cache_dir)
    return _read_spec(name, path, commit)


def recorded_spec(record: dict[str, Any], model: PathLike | None = None) -> ModelSpec:
    """The spec of the model a record names (`model` overrides it): the folder it was loaded from when that still
    exists (keeping the recorded name), else the name again (a hub id pinned to its recorded commit)."""
    if model is not None:
        return resolve_model(model)
    if not record.get("model"):
        raise InputError("the record names no model: pass the model (a hub id, a folder or package:NAME)")
    path = Path(record["path"]) if record.get("path") else None
    if path is not None and path.is_dir():
        revision = record.get("revision")
        return _read_spec(record["model"], path.resolve(), revision if is_commit(revision) else None)
    revision = record.get("revision")
    return resolve_model(record["model"], revision=revision if is_commit(revision) else None)


def read_json(path: Path, missing: Any = None) -> Any:
    """A JSON configuration file (`missing` when absent); InputError naming the file when it is not JSON."""
    if missing is not None and not path.is_file():
        return missing
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read model configuration: {e}", path) from e


def _read_spec(name: str, root: Path, commit: str | None) -> ModelSpec:
    st_cfg = read_json(root / "config_sentence_transformers.json", {})
    multivector = st_cfg.get("model_type") in ("ColBERT", "MultiVectorEncoder") or \
        any(key in st_cfg for key in _PYLATE_KEYS)
    if not (root / "modules.json").exists():
        spec = ModelSpec(name, root, commit, "transformers", root)
    else:
        spec = ModelSpec(name, root, commit, "sentence-transformers", root)
        modules = read_json(root / "modules.json")
        for position, module in enumerate(modules):
            _read_module(spec, module, root, multivector, modules[position + 1:])
        spec.prompts = {k: v for k, v in (st_cfg.get("prompts") or {}).items() if isinstance(v, str)}
        spec.default_prompt_name = st_cfg.get("default_prompt_name")
        spec.truncate_dim = st_cfg.get("truncate_dim")
        if multivector:
            _colbert_prompts(spec)
    for key, setting in _PYLATE_KEYS.items():
        if st_cfg.get(key) is not None:
            spec.colbert[setting] = st_cfg[key]
    tp = spec.transformer_path
    if not (tp / "config.json").exists():
        raise InputError("not a model directory: no config.json (expected a transformers or sentence-transformers "
                         "model folder)", tp)
    if not _weight_files(tp):
        raise InputError(f"no model weights found (expected one of {', '.join(WEIGHT_FILES)}); "
                         "a config-only folder cannot encode", tp)
    if (tp / "artifact.metadata").is_file():  # a Stanford ColBERT checkpoint
        _read_stanford_metadata(spec, tp / "artifact.metadata")
    spec.content_hash = content_hash(spec)
    return spec


def _read_module(spec: ModelSpec, module: dict, root: Path, multivector: bool, after: list[dict]) -> None:
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    path = root / module.get("path", "")
    if kind in ("Transformer", "MLMTransformer"):
        spec.transformer_path = path
        cfg = read_json(path / "sentence_bert_config.json", {})
        spec.max_length = cfg.get("max_seq_length")
        spec.do_lower_case = bool(cfg.get("do_lower_case", False))
        if "document_length" in cfg:  # sentence-transformers' multi-vector layout
            spec.colbert["document_max_length"] = cfg["document_length"]
        if "query_expansion" in cfg:
            expansion = cfg["query_expansion"]
            spec.colbert["augment_queries"] = bool(expansion)
            if expansion:
                if expansion.get("strategy", "fixed") != "fixed" or expansion.get("token") not in (None, "[MASK]"):
                    raise RankstackError(f"{path}: query expansion {expansion!r} is not supported (supported: "
                                         "padding to a fixed length with [MASK])")
                spec.colbert.update(query_length=expansion.get("length", 32),
                                    attend_to_mask_tokens=bool(expansion.get("attend", False)))
    elif kind == "Pooling":
        spec.pooling, spec.include_prompt = _pooling(read_json(path / "config.json"), path)
    elif kind == "Dense":
        spec.dense.append(_dense_layer(read_json(path / "config.json"), path, multivector))
    elif kind == "Normalize":
        cfg = read_json(path / "config.json", {})
        if cfg.get("module_input_name", "sentence_embedding") == "sentence_embedding":
            if any(str(m.get("type", "")).endswith(".Dense") for m in after):
                raise RankstackError(f"{path}: a Normalize module followed by a Dense module is not supported "
                                     "(supported: Dense layers, then Normalize)")
            spec.normalize = True
    elif kind == "MultiVectorMask":
        cfg = read_json(path / "config.json", {})
        if cfg.get("keep_only_token_ids") or set(cfg.get("skiplist_tasks") or ["document"]) != {"document"}:
            raise RankstackError(f"{path}: MultiVectorMask {cfg!r} is not supported (supported: a skiplist applied "
                                 "to documents)")
        spec.colbert["skiplist"] = cfg.get("skiplist_words") or []
    elif kind != "SpladePooling":
        raise RankstackError(f"{root}: sentence-transformers module {module.get('type')!r} is not supported by "
                             f"rankstack's encoders (supported: {', '.join(SUPPORTED_MODULES)})")


def _pooling(cfg: dict, path: Path) -> tuple[str, bool]:
    mode = cfg.get("pooling_mode")
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode is None:
        modes = [v for k, v in _POOLING_KEYS.items() if cfg.get(k)]
        if len(modes) != 1:
            raise RankstackError(f"{path}: expected exactly one pooling mode, found {modes or 'none'}")
        mode = modes[0]
    if not isinstance(mode, str):
        raise RankstackError(f"{path}: pooling modes concatenated ({mode!r}) are not supported")
    mode = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(mode, mode)
    if mode not in POOLINGS:
        raise RankstackError(f"{path}: pooling mode {mode!r} is not supported (supported: {', '.join(POOLINGS)})")
    return mode, cfg.get("include_prompt", True) is not False


def _dense_layer(cfg: dict, path: Path, multivector: bool) -> DenseLayer:
    default_input = "token_embeddings" if multivector else "sentence_embedding"
    source = cfg.get("module_input_name", default_input)
    if cfg.get("use_residual"):
        raise RankstackError(f"{path}: a Dense module with use_residual=true is not supported")
    if source not in ("sentence_embedding", "token_embeddings") or \
            cfg.get("module_output_name", source) != source:
        raise RankstackError(f"{path}: a Dense module from {source!r} to {cfg.get('module_output_name')!r} is not "
                             "supported (supported: on sentence_embedding or token_embeddings, in place)")
    activation = cfg.get("activation_function") or "torch.nn.modules.activation.Tanh"
    if not activation.startswith("torch."):
        raise RankstackError(f"{path}: the Dense module's activation {activation!r} is not a torch one; rankstack "
                             "imports torch activations only")
    try:
        return DenseLayer(path, int(cfg["in_features"]), int(cfg["out_features"]), bool(cfg.get("bias", True)),
                          activation, source == "token_embeddings")
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"a Dense module's config.json lacks in_features/out_features ({e})", path) from None


def _colbert_prompts(spec: ModelSpec) -> None:
    """sentence-transformers' multi-vector layout names its [Q]/[D] markers as prompts."""
    for prompt, setting in (("query", "query_marker"), ("document", "document_marker")):
        if spec.prompts.get(prompt):
            spec.colbert[setting] = spec.prompts[prompt]


def _read_stanford_metadata(spec: ModelSpec, path: Path) -> None:
    meta = read_json(path, {})
    for key, setting in _STANFORD_KEYS.items():
        if meta.get(key) is not None:
            spec.colbert[setting] = meta[key]
    if "mask_punctuation" in meta:
        spec.colbert["skip_punctuation"] = bool(meta["mask_punctuation"])


def _weight_files(folder: Path) -> list[Path]:
    """The weight files transformers would load from `folder` (safetensors preferred), shards included."""
    for name in WEIGHT_FILES:
        f = folder / name
        if f.exists():
            if name.endswith(".index.json"):
                shards = sorted(set(read_json(f).get("weight_map", {}).values()))
                return [f] + [folder / s for s in shards]
            return [f]
    return []


_SAMPLE = 1 << 16


def content_hash(spec: ModelSpec) -> str:
    """A hash of the model's configuration and tokenizer files (content) and weights (names, sizes, and three
    sampled 64 KiB windows of each file: cheap even for large models, and different for retrained weights),
    Dense modules' weights included.

    Two copies of the same model (a hub snapshot, a local folder) hash alike; other weights or settings do not.
    """
    h = hashlib.sha256()
    folders = sorted({spec.path, spec.transformer_path} | {p.parent for p in spec.path.glob("*/config.json")})
    for folder in folders:
        rel = folder.relative_to(spec.path).as_posix() if folder.is_relative_to(spec.path) else folder.name
        for name in IDENTITY_FILES:
            f = folder / name
            if f.is_file():
                h.update(f"{rel}/{name}\0".encode())
                h.update(f.read_bytes())
    weights = _weight_files(spec.transformer_path) + [f for layer in spec.dense for f in _weight_files(layer.path)]
    for f in weights:
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as stream:
            for start in sorted({0, max(size // 2 - _SAMPLE // 2, 0), max(size - _SAMPLE, 0)}):
                stream.seek(start)
                h.update(stream.read(_SAMPLE))
    return "sha256:" + h.hexdigest()[:24]


def weights_id(spec: ModelSpec) -> str:
    """Identifies the weights for score caches: the hub commit, else the content hash, folder and weights' mtime."""
    if spec.commit:
        return spec.commit
    mtimes = [(spec.transformer_path / f).stat().st_mtime_ns for f in WEIGHT_FILES
              if (spec.transformer_path / f).exists()]
    return f"{spec.content_hash}:{spec.transformer_path}:{max(mtimes, default=0)}"


@dataclass
class LoadedModel:
    """A tokenizer and a model in eval mode on a device, with the spec they came from (and, for encoders, the
    sentence-transformers Dense layers, loaded)."""

    spec: ModelSpec
    tokenizer: Any
    model: Any
    device: torch.device
    dtype: torch.dtype
    max_length: int
    dense: list[Any] = field(default_factory=list)  # float32 torch modules, in the order of spec.dense
    causal: bool = False  # its attention is causal (a decoder): a padding mask alone would lift that
    quantized: str | None = None  # "int8": Linear layers dynamically quantised (see QUANTIZED); None: exact
    compiled: bool = False  # the model's calls go through torch.compile (see `compile`)
    _backends: dict = field(default_factory=dict, repr=False)

    def compile(self) -> None:
        """Compile the model in place (`compile_model`)."""
        compile_model(self.model, self.device)
        self.compiled = True

    @property
    def precision(self) -> str:
        """What the model computes in: "float32", "float16", "bfloat16" or "int8" (as records name it)."""
        return self.quantized or str(self.dtype).removeprefix("torch.")

    @property
    def exact(self) -> bool:
        """Computes in float32 (results match sentence-transformers' and transformers' to float rounding)."""
        return self.quantized is None and str(self.dtype) == "torch.float32"

    def tokenize(self, texts: list[str], max_length: int | None = None, *,
                 add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text, truncated to `max_length` (default: the model's), unpadded.

        Calls the Rust tokenizer directly where there is one (the same ids as the transformers tokenizer, with
        the interpreter lock released while it works, so that a background thread can tokenize alongside).
        """
        max_length = max_length or self.max_length
        backend = self._backends.get(max_length)
        if backend is None and getattr(self.tokenizer, "is_fast", False):
            from tokenizers import Tokenizer
            backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
            backend.no_padding()
            backend.enable_truncation(max_length, direction=getattr(self.tokenizer, "truncation_side", "right"))
            self._backends[max_length] = backend
        if backend is None:
            return self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=add_special_tokens,
                                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def left_padding(self) -> bool:
        """The tokenizer pads on the left (decoder embedders such as Qwen3-Embedding)."""
        return getattr(self.tokenizer, "padding_side", "right") == "left"

    def attention_mask(self, mask: torch.Tensor, full: bool) -> torch.Tensor | None:
        """The mask to give the model for a batch: None when nothing is masked (SDPA then may take its flash
        kernel); with SDPA on CUDA under transformers >= 5 a ready 4-D mask, since transformers would read the
        2-D mask's content to decide, a host-device sync per batch; else the 2-D mask itself."""
        if getattr(self.model.config, "_attn_implementation", None) != "sdpa":
            return mask
        if full:
            return None
        if self.device.type == "cuda" and _transformers_major() >= 5 and not self.causal:
            return mask[:, None, None, :].bool()
        return mask

    def info(self) -> dict[str, Any]:
        """The model part of an encoder's record."""
        cfg = self.model.config
        return {"model": self.spec.name, "path": str(self.spec.path), "revision": self.spec.revision,
                "content_hash": self.spec.content_hash, "architecture": (cfg.architectures or [cfg.model_type])[0],
                "dtype": self.precision, "vocab_size": self.vocab_size}


def _transformers_major() -> int:
    import transformers
    return int(transformers.__version__.split(".")[0])


def precision_argument(dtype: torch.dtype) -> dict[str, Any]:
    """The `from_pretrained` keyword for a dtype (`dtype` in transformers >= 5, `torch_dtype` before)."""
    return {"dtype" if _transformers_major() >= 5 else "torch_dtype": dtype}


def activation_module(name: str) -> Callable:
    """An activation by name ('identity', 'sigmoid', 'tanh', 'softmax') or dotted torch path (the only ones
    imported, as sentence-transformers does without trust_remote_code)."""
    import torch
    named = {"identity": torch.nn.Identity, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
             "softmax": lambda: torch.nn.Softmax(dim=-1)}
    if name in named:
        return named[name]()
    if not name.startswith("torch."):
        raise InputError(f"unknown activation {name!r} (expected one of {', '.join(ACTIVATIONS)} or a torch path "
                         "such as 'torch.nn.modules.activation.Sigmoid')")
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)()
    except (ImportError, AttributeError, TypeError) as e:
        raise InputError(f"cannot build the activation {name!r}: {e}") from e


def load_model(name_or_path: PathLike | ModelSpec, *, task: str = "base", device: str | None = None,
               dtype: str | None = None, max_length: int | None = None, revision: str | None = None,
               attn_implementation: str | None = "sdpa", compile: bool = False) -> LoadedModel:
    """Tokenizer and model for inference, in eval mode on the device (None: CUDA when available), in `dtype`
    (None: fp32 on CPU, fp16 on CUDA; "int8" on CPU: dynamic int8 quantisation of the Linear layers, see
    `quantize_int8`), with SDPA attention where the architecture has it; `compile`: through `compile_model`.

    `task`: 'base' (AutoModel, with the sentence-transformers Dense layers), 'mlm' (AutoModelForMaskedLM),
    'sequence-classification' (AutoModelForSequenceClassification) or 'generative' (AutoModelForSeq2SeqLM for
    encoder-decoders, else AutoModelForCausalLM; the pad token is the end-of-sequence token where there is none).
    `max_length`: tokens per input (default: sentence-transformers' max_seq_length, else the tokenizer's, capped
    by the model's positions).
    """
    import torch
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM,
                              AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer)

    if task not in TASKS:
        raise InputError(f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    spec = name_or_path if isinstance(name_or_path, ModelSpec) else resolve_model(name_or_path, revision=revision)
    dev = select_device(device)
    quantized = quantization(dtype, dev)
    dt = select_dtype("fp32" if quantized else dtype, dev)
    if dev.type == "cpu" and dt == torch.bfloat16 and not cpu_has_bf16_units():
        log.warning("dtype='bf16' on a CPU without bf16 matrix units (AMX or AVX512-BF16): it is emulated and "
                    "may be slower than fp32; dtype='int8' is the faster reduced precision here")
    path = str(spec.transformer_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if task == "generative":
            seq2seq = AutoConfig.from_pretrained(path).is_encoder_decoder
            auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        else:
            auto = {"base": AutoModel, "mlm": AutoModelForMaskedLM,
                    "sequence-classification": AutoModelForSequenceClassification}[task]
        try:
            model = auto.from_pretrained(path, attn_implementation=attn_implementation, **precision_argument(dt))
        except (ValueError, ImportError):  # this architecture has no SDPA kernel: take the default attention
            model = auto.from_pretrained(path, **precision_argument(dt))
    except (OSError, ValueError, KeyError) as e:
        raise RankstackError(f"cannot load a {task} model from {path}: {e}") from e
    if not getattr(tokenizer, "is_fast", False):
        log.warning("%s has no fast tokenizer: tokenisation will be slow", path)
    if task == "generative" and tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise RankstackError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    model.to(dev).eval()
    model.requires_grad_(False)
    dense = [_load_dense(layer, dev) for layer in spec.dense] if task == "base" else []
    causal = any(getattr(m, "is_causal", False) is True for m in model.modules())
    if quantized:
        quantize_int8(model)
    loaded = LoadedModel(spec, tokenizer, model, dev, dt, model_max_length(spec, tokenizer, model.config, max_length),
                         dense, causal, quantized)
    if compile:
        loaded.compile()
    return loaded


def quantization(dtype: Any, device: torch.device) -> str | None:
    """The quantised precision `dtype` names ("int8"), None for a float one; InputError for int8 off the CPU."""
    if not isinstance(dtype, str) or dtype.lower() not in QUANTIZED:
        return None
    if device.type != "cpu":
        raise InputError(f"dtype={dtype!r} is a CPU option (dynamic quantisation); on {device.type} use 'fp16' or "
                         "'bf16'")
    return dtype.lower()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Quantise every Linear layer of `model` in place to dynamic int8 (torch's fbgemm/x86 kernels): weights per
    output channel, activations per batch at run time. Embeddings and LayerNorms stay float32. Returns `model`."""
    import warnings

    import torch
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as e:  # a torch without eager-mode quantisation
        raise RankstackError(f"dtype='int8' needs torch's dynamic quantisation, which this torch lacks ({e})") from e
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    return model


def cpp_compiler() -> str | None:
    """A C++ compiler on the PATH, as TorchInductor needs one on a CPU (None: none)."""
    import shutil
    return next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)


def compile_model(module: torch.nn.Module, device: torch.device) -> None:
    """Compile `module` in place with torch.compile (TorchInductor, dynamic shapes: batches of any size and length
    share one compiled graph, batches of one text take a second). Its first calls wait for the
    compilation (tens of seconds on a CPU, cached on disk for later processes); then elementwise work is fused,
    which pays when encoding many texts. Results equal the eager module's to float rounding. On a CPU TorchInductor
    needs a C++ compiler."""
    if device.type == "cpu" and cpp_compiler() is None:
        raise InputError("compile=True on a CPU needs a C++ compiler (g++ or clang++) for TorchInductor; "
                         "install one, or leave compile off")
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules()):
        raise InputError("compile=True does not take dtype='int8': compiled, dynamically quantised layers gave "
                         "other results than eager ones and ran no faster; use one or the other")
    module.compile(dynamic=True)


def model_max_length(spec: ModelSpec, tokenizer: Any, config: Any, given: int | None) -> int:
    """The given length (checked against the positions), else sentence-transformers' max_seq_length, else the
    tokenizer's, capped by the model's positions."""
    pos = getattr(config, "max_position_embeddings", None)
    pos = pos if pos and 0 < pos < 1_000_000 else None
    if given:
        if pos and given > pos:
            raise InputError(f"max_length={given} exceeds the model's {pos} positions")
        return int(given)
    tok_max = getattr(tokenizer, "model_max_length", None)
    tok_max = tok_max if tok_max and 0 < tok_max < 1_000_000 else None
    candidates = [x for x in (spec.max_length or tok_max, pos) if x]
    if not candidates:
        raise RankstackError(f"{spec.path}: cannot tell the model's maximum sequence length; pass max_length")
    return int(min(candidates))


def _load_dense(layer: DenseLayer, device: torch.device) -> Any:
    """A Dense module as torch.nn.Sequential(Linear, activation) in float32 (it reads the float32 pooled vectors),
    its weights read from the module folder."""
    import torch

    files = _weight_files(layer.path)
    if not files:
        raise InputError(f"the Dense module has no weights (expected one of {', '.join(WEIGHT_FILES)})", layer.path)
    if files[0].suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(files[0]))
    else:
        state = torch.load(files[0], map_location="cpu", weights_only=True)
    linear = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias)
    try:
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")})
    except RuntimeError as e:
        raise InputError(f"the Dense module's weights do not match its config: {e}", layer.path) from None
    return torch.nn.Sequential(linear, activation_module(layer.activation)).to(device).eval().requires_grad_(False)
