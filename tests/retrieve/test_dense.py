"""Dense and DenseRocchio stages over a tiny random-weight BERT (mechanics only, never quality)."""

import os

import numpy as np
import pytest

pytest.importorskip("faiss")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rankstack.data.corpus import Document  # noqa: E402
from rankstack.data.queries import Queries  # noqa: E402
from rankstack.errors import IncompatibleIndexError, InputError  # noqa: E402
from rankstack.index.dense import DenseIndex, DenseIndexWriter  # noqa: E402
from rankstack.pipeline.config import parse  # noqa: E402
from rankstack.retrieve.dense import Dense  # noqa: E402
from rankstack.retrieve.dense_prf import DenseRocchio  # noqa: E402

WORDS = ("vitamin bone density cancer risk smoking lung cell tumour gene protein immune therapy diet sleep heart "
         "blood pressure brain memory aging virus vaccine infection dose trial").split()
HIDDEN = 16


def tiny_bert(path, seed=0, layers=1):
    """A `layers`-layer BERT (hidden 16) with random weights and a word-level vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(str(path / "vocab.txt"), model_max_length=64).save_pretrained(path)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def encoder(model_dir):
    from rankstack.encoders import DenseEncoder
    return DenseEncoder(model_dir, device="cpu", progress=False)


def make_docs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [Document(f"d{i}", " ".join(rng.choice(WORDS, size=rng.integers(2, 12))), "")
            for i in range(n)]


QUERIES = Queries({"q1": "vitamin bone", "q2": "lung cancer smoking", "q3": "immune therapy trial"})


def test_dense_equals_brute_force_and_rebuilds_from_repr(tmp_path, encoder):
    docs = make_docs()
    dense = Dense.build(docs, tmp_path / "idx", encoder, k=5)
    d = encoder.encode_documents([doc.contents for doc in docs])
    q = encoder.encode_queries(list(QUERIES.values()))
    run = dense(QUERIES)
    scores = q @ d.T
    for i, qid in enumerate(QUERIES):
        expected = np.argsort(-scores[i], kind="stable")[:5]
        np.testing.assert_allclose(run[qid].scores, scores[i][expected], rtol=1e-5, atol=1e-5)
        assert run.ids(qid) == [docs[j].id for j in expected]
    # the encoder comes back from what the index records; repr rebuilds the stage
    again = parse(repr(Dense(tmp_path / "idx", k=5)))
    assert isinstance(again, Dense) and again.k == 5
    assert again(QUERIES).to_dict() == run.to_dict()
    hits = dense.search("vitamin bone", k=3)
    assert [doc_id for doc_id, _ in hits] == run.ids("q1")[:3]


def test_knobs_and_rescore_in_config(tmp_path, encoder):
    docs = make_docs(120)
    dense = Dense.build(docs, tmp_path / "idx", encoder, factory="IVF4,Flat", store_vectors="float16", k=10,
                        nprobe=4, rescore=True, rescore_depth=20)
    assert dense.config() == {"index": str(tmp_path / "idx"), "k": 10, "nprobe": 4, "rescore_depth": 20,
                              "rescore": True}
    flat = Dense.build(docs, tmp_path / "flat", encoder, k=10)
    a, b = dense(QUERIES), flat(QUERIES)
    for qid in QUERIES:  # all lists probed and rescored: the exact result, up to float16 vectors
        np.testing.assert_allclose(a[qid].scores, b[qid].scores, rtol=1e-2, atol=1e-2)


def test_encoder_mismatch_and_bad_input(tmp_path, encoder):
    from rankstack.encoders import DenseEncoder

    Dense.build(make_docs(10), tmp_path / "idx", encoder)
    other = DenseEncoder(tiny_bert(tmp_path / "other", layers=2), device="cpu", progress=False)
    with pytest.raises(IncompatibleIndexError, match="content_hash"):
        Dense(tmp_path / "idx", other)
    with pytest.raises(IncompatibleIndexError, match="normalize"):
        Dense(tmp_path / "idx", DenseEncoder(encoder.loaded.spec.path, normalize=True, device="cpu"))
    dense = Dense(tmp_path / "idx")
    with pytest.raises(InputError, match="empty query"):
        dense.search("   ")
    with pytest.raises(InputError, match="'q2'"):
        dense(Queries({"q1": "bone", "q2": ""}))
    with pytest.raises(InputError, match="already holds an index"):
        Dense.build(make_docs(3), tmp_path / "idx", encoder)
    with pytest.raises(InputError, match="unknown document id 'nope'"):
        dense.delete(["nope"])
    with pytest.raises(InputError, match="at least 8 vectors"):
        Dense.build(make_docs(5), tmp_path / "ivf", encoder, factory="IVF8,Flat")


def test_add_delete_readd(tmp_path, encoder):
    docs = make_docs(20)
    dense = Dense.build(docs[:10], tmp_path / "idx", encoder, k=100)
    assert dense.add(docs[10:]) == 10
    assert len(dense.index) == 20
    dense.delete(["d3", "d15"])
    ids = set(dense(QUERIES).ids("q1"))
    assert len(ids) == 18 and "d3" not in ids and "d15" not in ids
    dense.add([Document("d3", "vitamin bone bone vitamin")])
    run = dense(Queries({"q": "vitamin bone bone vitamin"}))
    assert run.ids("q")[0] == "d3" and len(run.ids("q")) == 19


def test_resumable_shards_give_the_same_index(tmp_path, encoder):
    docs = make_docs(25)
    a = Dense.build(docs, tmp_path / "a", encoder, k=10)
    b = Dense.build(docs, tmp_path / "b", encoder, k=10, shards=tmp_path / "shards", shard_size=7)
    assert len(list((tmp_path / "shards").glob("shard-*.npz"))) == 4
    assert a(QUERIES).to_dict() == b(QUERIES).to_dict()


def test_rocchio_equals_numpy_reference(tmp_path, encoder):
    docs = make_docs(60)
    dense = Dense.build(docs, tmp_path / "idx", encoder, k=10)
    prf = DenseRocchio(dense, fb_docs=3, alpha=0.7, beta=0.9, normalize=True)
    d = encoder.encode_documents([doc.contents for doc in docs])
    q = encoder.encode_queries(list(QUERIES.values()))
    top = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :3]
    expanded = 0.7 * q + 0.9 * d[top].mean(1)
    expanded /= np.linalg.norm(expanded, axis=1, keepdims=True)
    np.testing.assert_allclose(prf.expand(q), expanded, rtol=1e-5, atol=1e-6)
    run = prf(QUERIES)
    for i, qid in enumerate(QUERIES):
        scores = expanded[i] @ d.T
        expected = np.argsort(-scores, kind="stable")[:10]
        assert run.ids(qid) == [docs[j].id for j in expected]
        np.testing.assert_allclose(run[qid].scores, scores[expected], rtol=1e-4, atol=1e-5)
    assert isinstance(parse(repr(prf)), DenseRocchio)


def test_rocchio_moves_ranking_towards_feedback(tmp_path, encoder):
    """q = e0; a, b share a component along e1 that c lacks, so feedback from a and b lifts d (pure e1) over c."""
    e = np.eye(HIDDEN, dtype=np.float32)
    vectors = np.stack([e[0] + 0.5 * e[1], 0.9 * e[0] + 0.5 * e[1], 0.8 * e[0] - 0.5 * e[1], 1.5 * e[1]])
    with DenseIndexWriter(tmp_path / "toy", factory="Flat", dim=HIDDEN, encoder=encoder.model_info()) as w:
        w.add(["a", "b", "c", "d"], vectors)
    dense = Dense(DenseIndex(tmp_path / "toy"), encoder, k=4)
    query = e[:1]
    rows, _ = dense.search_vectors(query)
    assert [dense.index.doc_ids[int(r)] for r in rows[0]] == ["a", "b", "c", "d"]
    prf = DenseRocchio(dense, fb_docs=2, alpha=1.0, beta=4.0)
    np.testing.assert_allclose(prf.expand(query), [4.8 * e[0] + 2.0 * e[1]], rtol=1e-6)
    rows, scores = dense.search_vectors(prf.expand(query))
    assert [dense.index.doc_ids[int(r)] for r in rows[0]] == ["a", "b", "d", "c"]
    np.testing.assert_allclose(scores[0], [5.8, 5.32, 3.0, 2.84], rtol=1e-5)
    with pytest.raises(InputError):
        DenseRocchio(dense, fb_docs=0)


def test_a_cached_dense_stage_follows_its_index(tmp_path, encoder):
    dense = Dense.build(make_docs(20), tmp_path / "idx", encoder, k=5)
    cached = dense.cached(tmp_path / "cache")
    queries = Queries({"q": "vaccine virus infection"})
    before = cached(queries).ids("q")
    dense.add([Document("new", "vaccine virus infection vaccine virus")])
    assert cached(queries).ids("q") == dense(queries).ids("q") != before
    dense.delete(["new"])
    assert cached(queries).ids("q") == before
