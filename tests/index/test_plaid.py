"""PLAID multi-vector index: exact MaxSim, exhaustive search, compression error, persistence, updates, errors."""

import json

import numpy as np
import pytest

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError, RankstackError
from rankstack.index import plaid_kernels as K
from rankstack.index.search import PlaidParams
from rankstack.index.plaid import PlaidIndex, assign, maxsim_scores
from rankstack.index import commit
from rankstack.index.commit import WriterLock

DIM = 32
INFO = {"model": "tiny", "content_hash": "sha256:abc", "encoder": "multivector", "dimension": DIM, "projection": None}


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_docs(n, seed=0, topics=12):
    """Documents whose tokens cluster around a few topic directions, as real token vectors do."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((topics, DIM)))
    docs = []
    for _ in range(n):
        t = rng.integers(2, 25)
        docs.append(unit(centres[rng.integers(0, topics, t)] + 0.35 * rng.standard_normal((t, DIM))))
    return docs


def brute_force(query, docs):
    return np.array([(query @ d.T).max(1).sum() for d in docs], dtype=np.float32)


@pytest.fixture
def docs():
    return clustered_docs(120)


def make(path, docs, nbits=2, centroids=16):
    index = PlaidIndex.create(path, INFO, docs, nbits=nbits, num_centroids=centroids)
    index.add([f"d{i}" for i in range(len(docs))], docs)
    return index


def test_maxsim_equals_numpy_reference():
    rng = np.random.default_rng(1)
    query = rng.standard_normal((7, DIM)).astype(np.float32)
    docs = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (1, 5, 30, 2)]
    bounds = np.cumsum([0] + [len(d) for d in docs])
    got = maxsim_scores(query, np.concatenate(docs), bounds)
    expected = [sum(max(float(q @ t) for t in d) for q in query) for d in docs]
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert maxsim_scores(query, np.zeros((0, DIM), np.float32), np.array([0])).shape == (0,)


@pytest.mark.parametrize("nbits", [2, 4])
def test_exhaustive_search_is_brute_force_over_decompressed(tmp_path, docs, nbits):
    index = make(tmp_path / "idx", docs, nbits)
    decompressed = index.vectors(np.arange(len(docs)))
    assert [v.shape for v in decompressed] == [d.shape for d in docs]
    for seed in range(5):
        query = unit(np.random.default_rng(100 + seed).standard_normal((8, DIM)))
        ref = brute_force(query, decompressed)
        hits = index.search([query], len(docs), PlaidParams(nprobe=16, ncandidates=len(docs)))[0]
        order = np.lexsort((np.arange(len(ref)), -ref))
        assert hits.docnos.tolist() == order.tolist()
        assert np.allclose(hits.scores, ref[order], atol=1e-5)
        top = index.search([query], 10, PlaidParams(nprobe=16, ncandidates=len(docs)))[0]
        assert top.docnos.tolist() == order[:10].tolist()


def test_pruned_search_is_a_subset_scored_exactly(tmp_path, docs):
    index = make(tmp_path / "idx", docs)
    decompressed = index.vectors(np.arange(len(docs)))
    query = unit(np.random.default_rng(5).standard_normal((8, DIM)))
    hits = index.search([query], 5, PlaidParams(nprobe=1, ncandidates=8))[0]
    assert len(hits.docnos) == 5 and len(set(hits.docnos.tolist())) == 5
    assert np.allclose(hits.scores, brute_force(query, decompressed)[hits.docnos], atol=1e-5)
    assert (np.diff(hits.scores) <= 0).all()


@pytest.mark.parametrize("nbits", [2, 4])
def test_compression_error_within_bounds(tmp_path, nbits):
    docs = clustered_docs(300, seed=3)
    index = make(tmp_path / "idx", docs, nbits, centroids=32)
    x = np.concatenate(docs)
    codes, packed = index.compress(x)
    residual = x - index.centroids[codes]
    raw = K.decompress(codes, packed, np.array([0]), np.array([len(x)]), index.centroids, index._table, False)
    error = np.abs(raw - x)
    # A value between two cut-offs is reconstructed by its bucket's value, which lies in the same interval.
    cut = index.cutoffs
    inner = (residual > cut[0]) & (residual <= cut[-1])
    widths = np.diff(cut)
    bucket = np.searchsorted(cut, residual) - 1
    assert (error[inner] <= widths[np.clip(bucket, 0, len(widths) - 1)][inner] + 1e-6).all()
    assert np.all((index.weights[1:-1] >= cut[:-1]) & (index.weights[1:-1] <= cut[1:]))
    # Quantile buckets of a bell-shaped residual: relative RMSE ~0.37 (2 bits) and ~0.15 (4 bits) in theory.
    rmse = float(np.sqrt(((raw - x) ** 2).mean()))
    assert rmse < (0.45 if nbits == 2 else 0.2) * float(np.sqrt((residual ** 2).mean()))
    decompressed = np.concatenate(index.vectors(np.arange(len(docs))))
    assert np.allclose(np.linalg.norm(decompressed, axis=1), 1, atol=1e-5)
    gap = 1 - np.einsum("ij,ij->i", decompressed, x).mean()  # cosine lost, against the centroid alone
    gap_centroid = 1 - np.einsum("ij,ij->i", index.centroids[codes], x).mean()
    assert gap < (0.2 if nbits == 2 else 0.04) * gap_centroid
    assert packed.shape == (len(x), DIM * nbits // 8) and packed.dtype == np.uint8


def test_more_bits_smaller_error(tmp_path):
    docs = clustered_docs(200, seed=4)
    x = np.concatenate(docs)
    errors = []
    for nbits in (1, 2, 4):
        index = make(tmp_path / f"b{nbits}", docs, nbits)
        errors.append(float(np.abs(np.concatenate(index.vectors(np.arange(len(docs)))) - x).mean()))
    assert errors[0] > errors[1] > errors[2]
    shared = PlaidIndex.create(tmp_path / "shared", INFO, docs, nbits=4, centroids=index.centroids)
    assert np.array_equal(shared.centroids, index.centroids) and np.array_equal(shared.weights, index.weights)
    shared.add(["a", "b"], docs[:2], codes=index.chunks[0].codes[:len(docs[0]) + len(docs[1])])
    assert np.allclose(np.concatenate(shared.vectors([0, 1])), np.concatenate(index.vectors([0, 1])))
    with pytest.raises(InputError, match="codes"):
        shared.add(["c"], docs[:1], codes=np.full(len(docs[0]), 99))


def test_packing_round_trip():
    rng = np.random.default_rng(0)
    for nbits in (1, 2, 4):
        buckets = rng.integers(0, 1 << nbits, (9, 16)).astype(np.uint8)
        weights = np.arange(1 << nbits, dtype=np.float32) * 10
        packed = K.pack_buckets(buckets, nbits)
        table = K.byte_table(weights, nbits)
        assert np.array_equal(table[packed].reshape(9, 16), weights[buckets])


def test_persistence_round_trip(tmp_path, docs):
    index = make(tmp_path / "idx", docs, nbits=4)
    query = unit(np.random.default_rng(9).standard_normal((6, DIM)))
    before = index.search([query], 10, PlaidParams(nprobe=3))[0]
    again = PlaidIndex(tmp_path / "idx")
    after = again.search([query], 10, PlaidParams(nprobe=3))[0]
    assert np.array_equal(before.docnos, after.docnos) and np.array_equal(before.scores, after.scores)
    assert again.encoder_info == INFO and again.nbits == 4 and again.num_docs == len(docs)
    assert again.doc_ids.take(after.docnos) == [f"d{i}" for i in after.docnos.tolist()]
    assert not again.chunks[0].residuals.flags.writeable  # a view of the container file, not a copy
    assert np.array_equal(np.concatenate(again.vectors([3, 1])), np.concatenate(index.vectors([3, 1])))
    assert again.num_tokens == sum(len(d) for d in docs)
    assert again.size_bytes() > again.num_tokens * (DIM * 4 // 8)


def test_add_reuses_centroids_and_replaces_ids(tmp_path, docs):
    index = make(tmp_path / "idx", docs[:80])
    centroids = index.centroids.copy()
    index.add([f"d{i}" for i in range(80, 120)], docs[80:])
    assert np.array_equal(index.centroids, centroids) and len(index.chunks) == 2 and index.num_docs == 120
    everything = dict(nprobe=16, ncandidates=500)
    query = docs[100][:4]
    assert index.doc_ids.take(index.search([query], 1, PlaidParams(**everything))[0].docnos) == ["d100"]
    # Re-adding an id replaces its earlier version: one live copy, holding the new vectors.
    index.add(["d100"], [docs[5]])
    assert index.num_docs == 120
    hits = index.search([docs[5]], 120, PlaidParams(**everything))[0]
    ids = index.doc_ids.take(hits.docnos)
    assert len(ids) == len(set(ids)) == 120
    assert np.allclose(index.vectors(index.docnos(["d100"]))[0], index.vectors(index.docnos(["d5"]))[0])
    reopened = PlaidIndex(tmp_path / "idx")
    assert reopened.num_docs == 120 and reopened.docnos(["d100"])[0] == index.docnos(["d100"])[0]


def test_delete(tmp_path, docs):
    index = make(tmp_path / "idx", docs)
    assert index.delete(["d3", "d7", "d3"]) == 2
    assert index.docnos(["d3", "d7", "d8"]).tolist()[:2] == [-1, -1]
    query = docs[3][:5]
    for reopened in (index, PlaidIndex(tmp_path / "idx")):
        hits = reopened.search([query], len(docs), PlaidParams(nprobe=16, ncandidates=500))[0]
        assert len(hits.docnos) == len(docs) - 2
        assert not {"d3", "d7"} & set(reopened.doc_ids.take(hits.docnos))
    with pytest.raises(InputError, match="'nope'"):
        index.delete(["d1", "nope"])
    assert index.docnos(["d1"])[0] >= 0 and index.num_docs == len(docs) - 2  # nothing deleted
    index.add(["d3"], [docs[3]])  # back again
    assert index.doc_ids.take(index.search([query], 1, PlaidParams(nprobe=16, ncandidates=500))[0].docnos) == ["d3"]


def test_crashed_writer_leaves_previous_snapshot(tmp_path, docs):
    index = make(tmp_path / "idx", docs[:50])
    stray = tmp_path / "idx" / "chunk_0123456789ab.rsx"
    stray.write_bytes(b"half-written")
    assert PlaidIndex(tmp_path / "idx").num_docs == 50  # the manifest does not list it
    index.add(["x"], [docs[60]])
    assert PlaidIndex(tmp_path / "idx").num_docs == 51
    assert not stray.exists()  # the next commit removed it


def test_errors(tmp_path, docs):
    path = tmp_path / "idx"
    index = make(path, docs[:30])
    with pytest.raises(InputError, match="dimension 16, the index holds 32"):
        index.add(["a"], [np.ones((3, 16), np.float32)])
    with pytest.raises(InputError, match="dimension 16"):
        index.search([np.ones((3, 16), np.float32)], 10, PlaidParams())[0]
    with pytest.raises(InputError, match="no token vectors"):
        index.add(["a"], [np.zeros((0, DIM), np.float32)])
    with pytest.raises(InputError, match="NaN"):
        index.add(["a"], [np.full((2, DIM), np.nan, np.float32)])
    with pytest.raises(InputError, match="repeat"):
        index.add(["a", "a"], [docs[0], docs[1]])
    with pytest.raises(IncompatibleIndexError, match="content_hash"):
        index.check_encoder({**INFO, "content_hash": "sha256:other"})
    with pytest.raises(IncompatibleIndexError, match="48-dimensional"):
        index.check_encoder({**INFO, "dimension": 48})
    index.check_encoder({**INFO, "model": "/elsewhere/same-model", "device": "cuda"})  # where it was loaded from
    with pytest.raises(InputError, match="already holds an index"):
        PlaidIndex.create(path, INFO, docs)
    with pytest.raises(InputError, match="nbits"):
        PlaidIndex.create(tmp_path / "b", INFO, docs, nbits=3)
    with pytest.raises(InputError, match="num_centroids"):
        PlaidIndex.create(tmp_path / "c", INFO, docs[:2], num_centroids=1000)
    lock = WriterLock(path)
    lock.acquire()
    try:
        with pytest.raises(RankstackError, match="another writer"):
            index.delete(["d1"])
    finally:
        lock.release()
    assert PlaidIndex(path).num_docs == 30  # nothing lost by the rejected changes
    text = (path / "manifest.json").read_text()
    manifest = json.loads(text)
    (path / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(IndexFormatError, match="version 99"):
        PlaidIndex(path)
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    body["segments"][0]["meta"]["tokens"] = 1
    (path / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(IndexFormatError, match="fails its checksum"):
        PlaidIndex(path)
    (path / "manifest.json").write_text(json.dumps({**body, "checksum": commit._checksum(body)}))
    with pytest.raises(IndexFormatError, match="does not match the manifest"):
        PlaidIndex(path)
    (path / "manifest.json").write_text('{"format": "rankstack-plaid", "vers')
    with pytest.raises(IndexFormatError, match="damaged"):
        PlaidIndex(path)
    (path / "manifest.json").write_text(text)
    chunk = path / manifest["segments"][0]["files"]["data"][0]
    chunk.unlink()
    with pytest.raises(IndexFormatError, match=f"{chunk.name} is missing"):
        PlaidIndex(path)
    with pytest.raises(IndexFormatError, match="not an index directory"):
        PlaidIndex(tmp_path / "b")  # the rejected create left nothing


def test_assign_is_nearest_centroid():
    rng = np.random.default_rng(2)
    x, c = rng.standard_normal((50, DIM)).astype(np.float32), rng.standard_normal((7, DIM)).astype(np.float32)
    expected = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(assign(x, c), expected)
