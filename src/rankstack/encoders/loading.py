"""Model resolution and loading: a hub id or a local directory, in sentence-transformers or plain
transformers layout, and the `model_info` an index records (device and precision: rankstack.devices; the record
check: rankstack.records, re-exported here).

This module imports torch and transformers only inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankstack.devices import select_device, select_dtype  # noqa: F401 (select_dtype re-exported)
from rankstack.errors import InputError, RankstackError
from rankstack.records import check_compatible  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
#: Files whose content identifies a model (with the weights' names and sizes): hashed into `content_hash`.
IDENTITY_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                  "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "idf.json")
#: Hub files never needed here (other frameworks' exports, docs).
HUB_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*",
              "rust_model*", "coreml/*", "*.md", "*.png", "*.jpg"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
                 "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len", "pooling_mode_weightedmean_tokens": "weightedmean",
                 "pooling_mode_lasttoken": "lasttoken"}


@dataclass
class ModelSpec:
    """What a model directory says about itself, read without loading any weights."""

    name: str                   # as the caller gave it: a hub id or a path
    path: Path                  # the local directory (a hub snapshot for hub ids)
    commit: str | None          # hub commit hash, None for a local directory
    layout: str                 # "sentence-transformers" or "transformers"
    transformer_path: Path      # folder holding config.json and the weights
    pooling: str | None = None  # from 1_Pooling/config.json
    normalize: bool = False     # a Normalize module follows the pooling
    max_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    content_hash: str = ""

    @property
    def revision(self) -> str:
        """The hub commit when downloaded, else the content hash."""
        return self.commit or self.content_hash


def resolve_model(name_or_path: PathLike, *, revision: str | None = None, cache_dir: PathLike | None = None) -> ModelSpec:
    """Find a model: a local directory first, else a hub id downloaded (or found in the hub cache).

    Raises InputError for a path that is not a model directory, RankstackError when a hub id cannot be fetched.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    commit = None
    if path.is_dir():
        path = path.resolve()
    elif path.exists():
        raise InputError("expected a model directory, found a file", path)
    elif path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name or not _HUB_ID.match(name):
        raise InputError("model directory not found (and this is not a hub id such as "
                         "'sentence-transformers/all-MiniLM-L6-v2')", name)
    else:
        path = _snapshot(name, revision, cache_dir)
        commit = path.name if re.fullmatch(r"[0-9a-f]{40}", path.name) else None
    return _read_spec(name, path, commit)


def _snapshot(repo_id: str, revision: str | None, cache_dir: PathLike | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, ignore_patterns=HUB_IGNORE))
    except Exception as e:  # offline, unknown repo, gated, network error: all say the same to the user
        raise RankstackError(
            f"cannot fetch model {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {str(e).strip()[:300]}). "
            f"Without network access, pass a local directory instead (one holding config.json and model.safetensors, "
            f"e.g. a sentence-transformers model folder) in place of {repo_id!r}.") from e


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read model configuration: {e}", path) from e


def _read_spec(name: str, root: Path, commit: str | None) -> ModelSpec:
    modules_file = root / "modules.json"
    if not modules_file.exists():
        spec = ModelSpec(name, root, commit, "transformers", root)
    else:
        spec = ModelSpec(name, root, commit, "sentence-transformers", root)
        for module in _read_json(modules_file):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            mod_path = root / module.get("path", "")
            if kind in ("Transformer", "MLMTransformer"):
                spec.transformer_path = mod_path
                st_cfg = mod_path / "sentence_bert_config.json"
                if st_cfg.exists():
                    cfg = _read_json(st_cfg)
                    spec.max_length = cfg.get("max_seq_length")
                    spec.do_lower_case = bool(cfg.get("do_lower_case", False))
            elif kind == "Pooling":
                spec.pooling = _pooling_mode(_read_json(mod_path / "config.json"), mod_path)
            elif kind == "Normalize":
                spec.normalize = True
            elif kind not in ("SpladePooling",):
                raise RankstackError(f"{root}: sentence-transformers module {module.get('type')!r} is not supported "
                                     "by rankstack's encoders (supported: Transformer, Pooling, Normalize)")
        st_file = root / "config_sentence_transformers.json"
        if st_file.exists():
            cfg = _read_json(st_file)
            spec.prompts = {k: v for k, v in (cfg.get("prompts") or {}).items() if isinstance(v, str)}
            spec.default_prompt_name = cfg.get("default_prompt_name")
    tp = spec.transformer_path
    if not (tp / "config.json").exists():
        raise InputError("not a model directory: no config.json (expected a transformers or sentence-transformers "
                         "model folder)", tp)
    if not _weight_files(tp):
        raise InputError(f"no model weights found (expected one of {', '.join(WEIGHT_FILES)}); "
                         "a config-only folder cannot encode", tp)
    spec.content_hash = content_hash(spec)
    return spec


def _pooling_mode(cfg: dict, path: Path) -> str:
    if isinstance(cfg.get("pooling_mode"), str):
        mode = cfg["pooling_mode"]
    else:
        modes = [v for k, v in _POOLING_KEYS.items() if cfg.get(k)]
        if len(modes) != 1:
            raise RankstackError(f"{path}: expected exactly one pooling mode, found {modes or 'none'}")
        mode = modes[0]
    if cfg.get("include_prompt") is False:
        raise RankstackError(f"{path}: pooling that excludes prompt tokens (include_prompt=false) is not supported")
    mode = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(mode, mode)
    if mode not in ("mean", "cls", "max"):
        raise RankstackError(f"{path}: pooling mode {mode!r} is not supported (supported: mean, cls, max)")
    return mode


def _weight_files(folder: Path) -> list[Path]:
    """The weight files transformers would load from `folder` (safetensors preferred), shards included."""
    for name in WEIGHT_FILES:
        f = folder / name
        if f.exists():
            if name.endswith(".index.json"):
                shards = sorted(set(_read_json(f).get("weight_map", {}).values()))
                return [f] + [folder / s for s in shards]
            return [f]
    return []


_SAMPLE = 1 << 16


def content_hash(spec: ModelSpec) -> str:
    """A hash of the model's configuration and tokenizer files (content) and weights (names, sizes, and three
    sampled 64 KiB windows of each file: cheap even for large models, and different for retrained weights).

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
    for f in _weight_files(spec.transformer_path):
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as weights:
            for start in sorted({0, max(size // 2 - _SAMPLE // 2, 0), max(size - _SAMPLE, 0)}):
                weights.seek(start)
                h.update(weights.read(_SAMPLE))
    return "sha256:" + h.hexdigest()[:24]


@dataclass
class LoadedModel:
    """A tokenizer and a model in eval mode on a device, with the spec they came from."""

    spec: ModelSpec
    tokenizer: Any
    model: Any
    device: torch.device
    dtype: torch.dtype
    max_length: int
    _backends: dict = field(default_factory=dict, repr=False)

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

    def attention_mask(self, mask: torch.Tensor, full: bool) -> torch.Tensor | None:
        """The mask to give the model for a batch: None when nothing is masked (SDPA then may take its flash
        kernel); with SDPA on CUDA under transformers >= 5 a ready 4-D mask, since transformers would read the
        2-D mask's content to decide, a host-device sync per batch; else the 2-D mask itself."""
        if getattr(self.model.config, "_attn_implementation", None) != "sdpa":
            return mask
        if full:
            return None
        if self.device.type == "cuda" and _transformers_major() >= 5:
            return mask[:, None, None, :].bool()
        return mask

    def info(self) -> dict[str, Any]:
        """The model part of an encoder's `model_info()`."""
        cfg = self.model.config
        return {"model": self.spec.name, "path": str(self.spec.path), "revision": self.spec.revision,
                "content_hash": self.spec.content_hash, "architecture": (cfg.architectures or [cfg.model_type])[0],
                "dtype": str(self.dtype).removeprefix("torch."), "vocab_size": self.vocab_size}


def _transformers_major() -> int:
    import transformers
    return int(transformers.__version__.split(".")[0])


def load_model(name_or_path: PathLike | ModelSpec, *, task: str = "base", device: str | None = None,
               dtype: str | None = None, max_length: int | None = None, revision: str | None = None,
               attn_implementation: str | None = "sdpa") -> LoadedModel:
    """Load tokenizer and model ('base': AutoModel, 'mlm': AutoModelForMaskedLM) for inference."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    spec = name_or_path if isinstance(name_or_path, ModelSpec) else resolve_model(name_or_path, revision=revision)
    dev = select_device(device)
    dt = select_dtype(dtype, dev)
    auto = {"base": AutoModel, "mlm": AutoModelForMaskedLM}[task]
    path = str(spec.transformer_path)
    precision = {"dtype" if _transformers_major() >= 5 else "torch_dtype": dt}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        try:
            model = auto.from_pretrained(path, attn_implementation=attn_implementation, **precision)
        except (ValueError, ImportError):  # this architecture has no SDPA kernel: take the default attention
            model = auto.from_pretrained(path, **precision)
    except (OSError, ValueError, KeyError) as e:
        raise RankstackError(f"cannot load model from {path}: {e}") from e
    model.to(dev).eval()
    model.requires_grad_(False)
    pos = getattr(model.config, "max_position_embeddings", None)
    pos = pos if pos and 0 < pos < 1_000_000 else None
    tok_max = getattr(tokenizer, "model_max_length", None)
    tok_max = tok_max if tok_max and 0 < tok_max < 1_000_000 else None
    if max_length:
        length = int(max_length)
        if pos and length > pos:
            raise InputError(f"max_length={length} exceeds the model's {pos} positions")
    else:  # as sentence-transformers: its max_seq_length, else the tokenizer's, capped by the positions
        candidates = [x for x in (spec.max_length or tok_max, pos) if x]
        if not candidates:
            raise RankstackError(f"{path}: cannot tell the model's maximum sequence length; pass max_length")
        length = int(min(candidates))
    return LoadedModel(spec, tokenizer, model, dev, dt, length)
