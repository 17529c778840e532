"""LearnedSparse: build, exact search equal to brute-force dot products, the record of the encoder, updates,
the Seismic and matmul backends. The encoders are tiny random-weight BERT MLMs with a tokenizer built here."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rankstack.data.corpus import Document  # noqa: E402
from rankstack.data.queries import Queries  # noqa: E402
from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError  # noqa: E402
from rankstack.pipeline.config import parse  # noqa: E402
from rankstack.retrieve.sparse import APPROXIMATE_DIR, LearnedSparse, document_matrix  # noqa: E402

WORDS = ("vitamin bone density cancer smoking lung risk cell tumour protein gene dna repair apoptosis diet "
         "heart blood pressure brain memory sleep virus vaccine immune response drug trial dose children age").split()
DOCS = [Document(f"d{i}", " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(3 + i % 5)),
                 title="study" if i % 3 == 0 else "") for i in range(24)]
QUERIES = Queries({"q1": "vitamin bone", "q2": "lung cancer smoking risk", "q3": "immune vaccine", "q4": "sleep"})


def tiny_mlm(path, seed, intermediate_size=64):
    """A 1-layer BertForMaskedLM with random weights and a word-level vocabulary of WORDS."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "study", *WORDS]) + "\n")
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(WORDS) + 6, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=intermediate_size, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm")
    return tiny_mlm(root / "a", 0), tiny_mlm(root / "b", 1, intermediate_size=48)  # another model


@pytest.fixture(scope="module")
def encoder(models):
    from rankstack.encoders import SpladeEncoder
    return SpladeEncoder(models[0], device="cpu", progress=False)


def brute_force(encoder, docs, texts, k, bits=16):
    """Top-k by dense dot products of the quantised document vectors (the index's own rounding)."""
    d = encoder.encode_documents([doc.contents for doc in docs]).toarray()
    scale = d.max() / (2 ** bits - 1)
    d = np.where(d > 0, np.clip(np.rint(d / scale), 1, None), 0) * scale
    q = encoder.encode_queries(texts).toarray()
    scores = q @ d.T
    return [[(docs[j].id, scores[i, j]) for j in np.lexsort((np.arange(len(docs)), -scores[i]))[:k]]
            for i in range(len(texts))]


@pytest.mark.parametrize("algorithm,reorder", [("maxscore", False), ("bmw", False), ("bmp", False),
                                               ("exhaustive", False), ("matmul", False), ("bmp", True),
                                               ("maxscore", True)])
def test_exact_search_equals_brute_force(tmp_path, encoder, algorithm, reorder):
    stage = LearnedSparse.build(DOCS, tmp_path / "idx", encoder, impact_bits=16, k=5, algorithm=algorithm,
                                reorder=reorder)
    assert stage.index.settings["reorder"] is reorder
    run = stage(QUERIES)
    expected = brute_force(encoder, DOCS, list(QUERIES.values()), 5)
    for qid, exp in zip(QUERIES, expected):
        got = run.hits(qid)
        assert [d for d, _ in got] == [d for d, _ in exp]
        assert np.allclose([s for _, s in got], [s for _, s in exp], rtol=1e-4)


def test_record_reopen_and_wrong_model(tmp_path, encoder, models):
    from rankstack.encoders import SpladeEncoder
    path = tmp_path / "idx"
    built = LearnedSparse.build(DOCS, path, encoder, k=3)
    assert built.index.settings["metadata"]["encoder"]["content_hash"] == encoder.model_info()["content_hash"]
    reopened = LearnedSparse(path, k=3, device="cpu")  # the encoder comes from the index's record
    assert reopened(QUERIES).to_dict() == built(QUERIES).to_dict()
    assert parse(repr(reopened))(QUERIES).to_dict() == built(QUERIES).to_dict()
    with pytest.raises(IncompatibleIndexError, match="content_hash"):
        LearnedSparse(path, SpladeEncoder(models[1], device="cpu", progress=False))
    with pytest.raises(IncompatibleIndexError):
        LearnedSparse(path, SpladeEncoder(models[0], device="cpu", query_top_k=2, progress=False))
    with pytest.raises(InputError, match="already holds"):
        LearnedSparse.build(DOCS, path, encoder)


def test_empty_queries_and_documents(tmp_path, encoder):
    docs = DOCS[:5] + [Document("blank", "  ")]
    stage = LearnedSparse.build(docs, tmp_path / "idx", encoder, k=10)
    assert stage.index.docno("blank") >= 0 and len(stage.index) == 6
    run = stage(Queries({"a": "vitamin", "b": "   ", "c": ""}))
    assert len(run["b"].docnos) == 0 and len(run["c"].docnos) == 0 and len(run["a"].docnos) > 0
    assert "blank" not in run.ids("a")
    with pytest.raises(InputError, match="empty"):
        stage.search("  ")


def test_add_and_delete(tmp_path, encoder):
    stage = LearnedSparse.build(DOCS[:12], tmp_path / "idx", encoder, k=100, shards=tmp_path / "shards",
                                shard_size=5)
    assert (tmp_path / "shards" / "complete.json").exists()
    stage.add(DOCS[12:])
    stage.add([Document("d0", "sleep memory brain")])  # replaces d0
    stage.delete(["d1", "unknown"])
    docs = [Document("d0", "sleep memory brain"), *DOCS[2:]]
    run = stage(QUERIES)
    expected = brute_force(stage.encoder, docs, list(QUERIES.values()), 100, bits=8)
    for qid, exp in zip(QUERIES, expected):
        assert set(run.ids(qid)) == {d for d, s in exp if s > 0}
    assert "d1" not in {d for q in QUERIES for d in run.ids(q)}
    assert stage.index.num_live == len(DOCS) - 1


def test_seismic_backend(tmp_path, encoder):
    path = tmp_path / "idx"
    exact = LearnedSparse.build(DOCS, path, encoder, k=5)
    with pytest.raises(IndexFormatError, match="build_approximate"):
        LearnedSparse(path, encoder, algorithm="seismic")
    exact.build_approximate(n_postings=None, summary_energy=1.0)
    approx = LearnedSparse(path, encoder, k=5, algorithm="seismic", query_cut=None, heap_factor=1.0)
    a, e = approx(QUERIES), exact(QUERIES)
    for q in QUERIES:  # no pruning: the same scores (ties may order differently)
        assert np.allclose(a[q].scores, e[q].scores, rtol=1e-5)
    approx.delete(["d0"])  # the approximate index follows updates
    assert "d0" not in {d for q in QUERIES for d in approx(QUERIES).ids(q)}
    exact.add([Document("new", "vitamin bone")])  # a commit through another stage: the Seismic index is rebuilt
    assert "new" in LearnedSparse(path, encoder, algorithm="seismic")(QUERIES).ids("q1")
    exact.build_approximate(n_postings=None, summary_energy=1.0, value_bits=32)  # float32 weights: exact scores
    assert json.loads((path / APPROXIMATE_DIR / "manifest.json").read_text())["settings"]["value_bits"] == 32
    approx = LearnedSparse(path, encoder, k=5, algorithm="seismic", query_cut=None, heap_factor=1.0)
    a, e = approx(QUERIES), exact(QUERIES)
    for q in QUERIES:
        assert np.allclose(a[q].scores, e[q].scores, rtol=1e-5)


def test_stale_seismic_index(tmp_path, encoder):
    from rankstack.index.inverted import IndexWriter
    path = tmp_path / "idx"
    stage = LearnedSparse.build(DOCS, path, encoder, algorithm="seismic")
    with IndexWriter(path) as writer:  # a commit that bypasses the stage
        writer.delete(["d3"])
    with pytest.raises(IncompatibleIndexError, match="build_approximate"):
        LearnedSparse(path, encoder, algorithm="seismic")
    assert stage.index.generation < LearnedSparse(path, encoder).index.generation


def test_document_matrix_dequantises(tmp_path, encoder):
    stage = LearnedSparse.build(DOCS, tmp_path / "idx", encoder, impact_bits=16)
    m = document_matrix(stage.index, stage.vocabulary)
    ref = encoder.encode_documents([d.contents for d in DOCS]).toarray()
    assert m.shape == ref.shape and np.abs(m.toarray() - ref).max() <= stage.index.settings["impact_scale"]


def test_bad_inputs(tmp_path, encoder):
    with pytest.raises(InputError):
        LearnedSparse.build(DOCS, tmp_path / "a", encoder, impact_bits=12)
    with pytest.raises(InputError):
        LearnedSparse.build([Document("", "vitamin")], tmp_path / "b", encoder)
    with pytest.raises(IncompatibleIndexError):
        from rankstack.retrieve.bm25 import BM25
        BM25.build(DOCS, tmp_path / "bm25")
        LearnedSparse(tmp_path / "bm25")
    stage = LearnedSparse.build(DOCS, tmp_path / "c", encoder)
    with pytest.raises(InputError):
        LearnedSparse(stage.index, algorithm="nope")


def test_inference_free_encoder(tmp_path, models):
    from rankstack.encoders import InferenceFreeSparseEncoder
    encoder = InferenceFreeSparseEncoder(models[0], device="cpu", progress=False)
    encoder.fit_idf(d.contents for d in DOCS)
    path = tmp_path / "idx"
    built = LearnedSparse.build(DOCS, path, encoder, k=5)
    reopened = LearnedSparse(path, k=5, device="cpu")  # its IDF table is kept with the index
    assert reopened(QUERIES).to_dict() == built(QUERIES).to_dict()
    assert type(reopened.encoder).__name__ == "InferenceFreeSparseEncoder"
    other = InferenceFreeSparseEncoder(models[0], device="cpu", progress=False)  # no IDF: other query weights
    with pytest.raises(IncompatibleIndexError, match="query_idf"):
        LearnedSparse(path, other)
