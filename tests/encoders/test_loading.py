import json

import pytest

from rankstack.encoders import check_compatible, resolve_model
from rankstack.encoders.loading import select_device, select_dtype
from rankstack.errors import IncompatibleIndexError, InputError, RankstackError

from .conftest import CONFIG_ONLY


def test_sentence_transformers_layout(minilm_dir):
    spec = resolve_model(minilm_dir)
    assert spec.layout == "sentence-transformers" and spec.pooling == "mean" and spec.normalize
    assert spec.max_length == 256 and spec.commit is None and spec.revision == spec.content_hash
    assert spec.content_hash.startswith("sha256:") and resolve_model(str(minilm_dir)).content_hash == spec.content_hash


def test_transformers_layout(splade_dir, splade):
    spec = resolve_model(splade_dir)
    assert spec.layout == "transformers" and spec.pooling is None and not spec.normalize
    assert splade.model_info()["document_max_length"] == 512


def test_hub_id_resolves_through_snapshot(minilm_dir, tmp_path, monkeypatch):
    """A hub id goes through huggingface_hub.snapshot_download; a copy of a model hashes alike."""
    import huggingface_hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in minilm_dir.rglob("*"):
        if f.is_file():
            (snap / f.relative_to(minilm_dir)).parent.mkdir(exist_ok=True)
            (snap / f.relative_to(minilm_dir)).symlink_to(f)
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append(repo_id) or str(snap))
    spec = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert calls == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert spec.commit == commit == spec.revision
    assert spec.content_hash == resolve_model(minilm_dir).content_hash


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RankstackError, match="rankstack-test/no-such-model.*local directory") as e:
        resolve_model("rankstack-test/no-such-model", cache_dir=tmp_path)
    assert not isinstance(e.value, InputError)


def test_bad_directories(tmp_path, minilm_dir):
    with pytest.raises(InputError, match="not found"):
        resolve_model(tmp_path / "missing")
    with pytest.raises(InputError, match="not found"):
        resolve_model("./no/such/model/dir")
    with pytest.raises(InputError, match="file"):
        resolve_model(minilm_dir / "config.json")
    with pytest.raises(InputError, match="config.json"):
        resolve_model(tmp_path)
    if CONFIG_ONLY.is_dir():
        with pytest.raises(InputError, match="no model weights"):
            resolve_model(CONFIG_ONLY)
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(InputError, match="no model weights"):
        resolve_model(tmp_path)
    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.WordEmbeddings", "path": "0"}]')
    with pytest.raises(RankstackError, match="module 'sentence_transformers.models.WordEmbeddings' is not supported"):
        resolve_model(tmp_path)


def test_missing_weights_with_encoder(tmp_path, minilm_dir):
    from rankstack.encoders import DenseEncoder
    for name in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    with pytest.raises(InputError, match="no model weights") as e:
        DenseEncoder(tmp_path, device="cpu")
    assert str(tmp_path) in str(e.value)


def test_model_info_and_check_compatible(dense, splade):
    info = dense.model_info()
    assert json.loads(json.dumps(info)) == info  # storable as JSON
    assert info["dimension"] == 384 and info["pooling"] == "mean" and info["normalize"] is True
    check_compatible(info, dense.model_info())
    check_compatible(json.loads(json.dumps(info)), {**info, "dtype": "float16", "path": "/elsewhere", "model": "hub/id"})
    for key, value in [("pooling", "cls"), ("normalize", False), ("content_hash", "sha256:other"),
                       ("query_prefix", "query: "), ("dimension", 768)]:
        with pytest.raises(IncompatibleIndexError, match=key):
            check_compatible(info, {**info, key: value})
    with pytest.raises(IncompatibleIndexError, match="encoder"):
        check_compatible(info, splade.model_info())
    sparse = splade.model_info()
    with pytest.raises(IncompatibleIndexError, match="query_model.content_hash"):
        check_compatible({**sparse, "query_model": {**info}}, {**sparse, "query_model": {**info, "content_hash": "x"}})


def test_device_and_dtype():
    import torch
    cpu = select_device("cpu")
    assert select_dtype(None, cpu) == torch.float32 and select_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(InputError, match="fp16"):
        select_dtype("fp16", cpu)
    with pytest.raises(InputError):
        select_dtype("int3", cpu)
    with pytest.raises(InputError):
        select_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            select_device("cuda")
        assert select_device(None).type == "cpu"


@pytest.mark.parametrize("max_length,special", [(None, True), (16, True), (16, False), (5, False)])
def test_tokenize_equals_transformers_tokenizer(dense, max_length, special):
    from .conftest import TEXTS
    lm = dense.loaded
    expected = lm.tokenizer(TEXTS, truncation=True, max_length=max_length or lm.max_length,
                            add_special_tokens=special)["input_ids"]
    assert lm.tokenize(TEXTS, max_length, add_special_tokens=special) == expected


def test_check_compatible_tolerates_new_keys(dense):
    info = dense.model_info()
    check_compatible(info, {**info, "a_key_added_later": 1})
    with pytest.raises(IncompatibleIndexError, match="lowercase: index False, encoder None"):
        check_compatible(info, {k: v for k, v in info.items() if k != "lowercase"})


def test_retrained_weights_of_the_same_shape_hash_differently(tmp_path, splade_dir):
    import shutil

    import torch
    from transformers import AutoModelForMaskedLM

    copy = tmp_path / "copy"
    shutil.copytree(splade_dir, copy)
    assert resolve_model(copy).content_hash == resolve_model(splade_dir).content_hash  # same files, same hash
    model = AutoModelForMaskedLM.from_pretrained(copy)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # "retrained": same shapes, same file sizes, other values
    for f in copy.glob("*.safetensors"):
        f.unlink()
    (copy / "pytorch_model.bin").unlink(missing_ok=True)
    model.save_pretrained(copy)
    sizes = {f.name: f.stat().st_size for f in copy.glob("*.safetensors")}
    assert sizes == {f.name: f.stat().st_size for f in splade_dir.glob("*.safetensors")}  # only values differ
    assert resolve_model(copy).content_hash != resolve_model(splade_dir).content_hash


def test_records_of_older_indexes_still_rebuild_their_encoder(dense, minilm_dir):
    """Indexes recorded before include_prompt, truncate_dim and dense existed: the same encoder comes back."""
    from rankstack.encoders import encoder_from_record

    old = {k: v for k, v in dense.to_record().items() if k not in ("include_prompt", "truncate_dim", "dense")}
    again = encoder_from_record(old, device="cpu", progress=False)
    check_compatible(old, again.to_record())
    assert again.to_record() == dense.to_record()
    moved = {**old, "path": "/no/longer/there"}  # the folder moved: the recorded name (here a folder) is used
    assert encoder_from_record({**moved, "model": str(minilm_dir)}, device="cpu").to_record() == dense.to_record()
    with pytest.raises(InputError, match="not found"):
        encoder_from_record({**moved, "model": "/no/longer/there"}, device="cpu")
