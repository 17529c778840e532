"""Models users bring: every sentence-transformers layout rankstack reads gives the vectors sentence-transformers
itself computes (max abs difference < 1e-5), its settings land in the record, and the modules it cannot compute
are refused by name. Tiny random models built from configs (tests/encoders/st_models.py)."""

import json

import numpy as np
import pytest

from rankstack.encoders import DenseEncoder, MultiVectorEncoder, check_compatible, encoder_from_record
from rankstack.errors import IncompatibleIndexError, InputError, RankstackError

from . import st_models
from .conftest import TEXTS

st = pytest.importorskip("sentence_transformers")

PROMPTS = {"query": "query: ", "document": "passage: "}
#: name -> (backbone, save_sentence_transformer options)
LAYOUTS = {
    "dense-tanh-normalize": ("bert", dict(dense=[(16, "Tanh", True)])),
    "prompt-left-out-of-pooling": ("bert", dict(include_prompt=False, prompts=PROMPTS)),
    "matryoshka-config": ("bert", dict(pooling="cls", dense=[(24, "Identity", False)], truncate_dim=8)),
    "max-unnormalized-truncated": ("bert", dict(pooling="max", normalize=False, truncate_dim=8)),
    "lasttoken-decoder-left-padded": ("qwen2", dict(pooling="lasttoken", prompts={"query": "Instruct: find\nQuery: "})),
}


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    if not st_models.CONFIG_ONLY.is_dir():
        pytest.skip(f"tokenizer folder not found: {st_models.CONFIG_ONLY}")
    root = tmp_path_factory.mktemp("backbones")
    return {"bert": st_models.build_bert(root / "bert"), "qwen2": st_models.build_qwen2(root / "qwen2")}


@pytest.fixture(scope="module")
def layouts(backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {name: st_models.save_sentence_transformer(backbones[backbone], root / name, **options)
            for name, (backbone, options) in LAYOUTS.items()}


def theirs(folder, texts, prompt_name=None, **options):
    model = st.SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, prompt_name=prompt_name, convert_to_numpy=True, batch_size=4, **options)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_sentence_transformers_layouts_give_its_vectors(layouts, layout):
    folder = layouts[layout]
    encoder = DenseEncoder(folder, device="cpu", batch_size=2, progress=False)  # other batches than theirs
    model = st.SentenceTransformer(str(folder), device="cpu")
    query_prompt = "query" if "query" in model.prompts else None
    expected_queries = theirs(folder, TEXTS, query_prompt, normalize_embeddings=encoder.normalize)
    expected_documents = theirs(folder, TEXTS, "document" if "document" in model.prompts else None,
                                normalize_embeddings=encoder.normalize)
    queries, documents = encoder.encode_queries(TEXTS), encoder.encode_documents(TEXTS)
    assert queries.shape == expected_queries.shape == (len(TEXTS), encoder.dimension)
    assert np.abs(queries - expected_queries).max() < 1e-5
    assert np.abs(documents - expected_documents).max() < 1e-5
    options = LAYOUTS[layout][1]
    record = encoder.to_record()
    assert record["pooling"] == options.get("pooling", "mean") and record["truncate_dim"] == options.get("truncate_dim")
    assert record["include_prompt"] == options.get("include_prompt", True)
    assert [layer["out"] for layer in record["dense"]] == [d[0] for d in options.get("dense", [])]
    assert record["normalize"] == options.get("normalize", True)
    assert encoder_from_record(record, device="cpu").to_record() == record  # the record rebuilds it


def test_decoder_embedder_is_padded_on_the_left_and_pooled_on_its_last_token(layouts):
    encoder = DenseEncoder(layouts["lasttoken-decoder-left-padded"], device="cpu", batch_size=3, progress=False)
    assert encoder.loaded.left_padding and encoder.loaded.causal and encoder.pooling == "lasttoken"
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS[:4]])  # no padding at all
    assert np.abs(encoder.encode(TEXTS[:4]) - alone).max() < 1e-5  # padding changes nothing


def test_truncate_dim_argument_renormalises_as_sentence_transformers(layouts):
    folder = layouts["dense-tanh-normalize"]
    encoder = DenseEncoder(folder, truncate_dim=4, device="cpu", progress=False)
    expected = theirs(folder, TEXTS, truncate_dim=4, normalize_embeddings=True)
    assert encoder.dimension == 4 == encoder.to_record()["dimension"]
    assert np.abs(encoder.encode_documents(TEXTS) - expected).max() < 1e-5
    assert np.allclose(np.linalg.norm(encoder.encode_documents(TEXTS), axis=1), 1, atol=1e-5)
    for bad in (0, 17):
        with pytest.raises(InputError, match="truncate_dim"):
            DenseEncoder(folder, truncate_dim=bad, device="cpu")


def test_records_keep_an_index_to_the_settings_it_was_built_with(layouts, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    folder = layouts["dense-tanh-normalize"]
    built = DenseEncoder(folder, device="cpu").to_record()
    for other in (dict(truncate_dim=8), dict(include_prompt=False), dict(pooling="cls")):
        with pytest.raises(IncompatibleIndexError):
            check_compatible(built, DenseEncoder(folder, device="cpu", **other).to_record())
    copy = tmp_path / "retrained"
    shutil.copytree(folder, copy)
    dense = copy / "2_Dense" / "model.safetensors"
    weights = load_file(str(dense))
    save_file({k: v * 1.01 for k, v in weights.items()}, str(dense))  # only the Dense layer's weights change
    assert torch.equal(load_file(str(dense))["linear.bias"], weights["linear.bias"] * 1.01)
    with pytest.raises(IncompatibleIndexError, match="content_hash"):
        check_compatible(built, DenseEncoder(copy, device="cpu").to_record())


def edit_json(path, change):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


def test_modules_it_cannot_compute_are_refused_by_name(layouts, tmp_path):
    import shutil

    def variant(name):
        folder = tmp_path / name
        shutil.copytree(layouts["dense-tanh-normalize"], folder)
        return folder

    folder = variant("word-weights")
    edit_json(folder / "modules.json", lambda m: m + [{"idx": 9, "name": "9", "path": "9_WordWeights",
                                                      "type": "sentence_transformers.models.WordWeights"}])
    with pytest.raises(RankstackError, match="WordWeights"):
        DenseEncoder(folder, device="cpu")
    folder = variant("weightedmean")
    edit_json(folder / "1_Pooling" / "config.json", lambda c: {**c, "pooling_mode": "weightedmean"})
    with pytest.raises(RankstackError, match="weightedmean"):
        DenseEncoder(folder, device="cpu")
    folder = variant("two-poolings")
    edit_json(folder / "1_Pooling" / "config.json", lambda c: {**c, "pooling_mode": ["mean", "max"]})
    with pytest.raises(RankstackError, match="concatenated"):
        DenseEncoder(folder, device="cpu")
    folder = variant("residual")
    edit_json(folder / "2_Dense" / "config.json", lambda c: {**c, "use_residual": True})
    with pytest.raises(RankstackError, match="use_residual"):
        DenseEncoder(folder, device="cpu")
    folder = variant("normalize-first")
    edit_json(folder / "modules.json", lambda m: [m[0], m[1], m[3], m[2]])
    with pytest.raises(RankstackError, match="Normalize module followed by a Dense"):
        DenseEncoder(folder, device="cpu")
    folder = variant("custom-activation")
    edit_json(folder / "2_Dense" / "config.json", lambda c: {**c, "activation_function": "mypackage.Swish"})
    with pytest.raises(RankstackError, match="mypackage.Swish"):
        DenseEncoder(folder, device="cpu")


# --- ColBERT checkpoints ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colbert(backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("colbert")
    pylate = st_models.save_pylate(backbones["bert"], root / "pylate")
    return {"pylate": pylate, "sentence-transformers": st_models.save_multi_vector(pylate, root / "st-multi-vector"),
            "stanford": st_models.save_stanford(backbones["bert"], root / "stanford")}


@pytest.mark.parametrize("layout", ["pylate", "sentence-transformers", "stanford"])
def test_colbert_layouts_give_sentence_transformers_multi_vectors(colbert, layout):
    folder = colbert[layout]
    model = st.MultiVectorEncoder(str(folder), device="cpu")
    encoder = MultiVectorEncoder(folder, device="cpu", batch_size=2, progress=False)
    for ours, expected in ((encoder.encode_queries(TEXTS), model.encode_query(TEXTS, batch_size=4)),
                           (encoder.encode_documents(TEXTS), model.encode_document(TEXTS, batch_size=4))):
        for a, b in zip(ours, expected):
            b = np.asarray(b)
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-5
    record = encoder.to_record()
    stanford = layout == "stanford"
    assert record["dimension"] == 8 and record["projection"] is not None
    assert record["markers"] == (["[unused0]", "[unused1]"] if stanford else ["[Q] ", "[D] "])
    assert (record["query_length"], record["document_max_length"]) == ((16, 30) if stanford else (12, 40))
    assert encoder_from_record(record, device="cpu").to_record() == record


def test_a_colbert_checkpoint_is_not_a_dense_encoder(colbert):
    with pytest.raises(RankstackError, match="MultiVectorEncoder"):
        DenseEncoder(colbert["pylate"], device="cpu")
