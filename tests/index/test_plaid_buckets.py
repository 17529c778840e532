"""PLAID per-dimension residual buckets, byte tables, and the candidate stages of search."""

import numpy as np
import pytest

from rankstack.errors import IndexFormatError, InputError
from rankstack.index import plaid_kernels as K
from rankstack.index.container import write_container
from rankstack.index.search import PlaidParams
from rankstack.index.plaid import PlaidIndex, bucket_quantiles
from tests.index.manifests import edit_manifest

DIM = 16
INFO = {"model": "tiny", "content_hash": "sha256:abc", "encoder": "multivector", "dimension": DIM, "projection": None}


def skewed_docs(n, seed=0):
    """Unit token vectors whose dimensions spread very differently (a few large ones), as MiniLM's do."""
    rng = np.random.default_rng(seed)
    scale = np.geomspace(3.0, 0.1, DIM).astype(np.float32)
    docs = []
    for _ in range(n):
        x = rng.standard_normal((int(rng.integers(3, 20)), DIM)).astype(np.float32) * scale
        docs.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return docs


def make(path, docs, nbits, buckets):
    index = PlaidIndex.create(path, INFO, docs, nbits=nbits, num_centroids=8, buckets=buckets)
    index.add([f"d{i}" for i in range(len(docs))], docs)
    return index


def test_bucket_quantiles_per_dimension():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((4000, 3)).astype(np.float32) * np.array([1.0, 10.0, 0.1], np.float32)
    cut, w = bucket_quantiles(r, 2, per_dimension=True)
    assert cut.shape == (3, 3) and w.shape == (3, 4)
    for d, s in enumerate((1.0, 10.0, 0.1)):
        assert np.allclose(cut[d], s * np.array([-0.674, 0, 0.674]), atol=0.1 * s)  # normal quartiles
        assert (np.diff(w[d]) > 0).all() and (w[d, 1:] >= cut[d]).all() and (w[d, :-1] <= cut[d]).all()
    cut_global, w_global = bucket_quantiles(r, 2)
    assert cut_global.shape == (3,) and w_global.shape == (4,)


def test_bucketize_matches_searchsorted():
    rng = np.random.default_rng(1)
    r = rng.standard_normal((50, 4)).astype(np.float32)
    cutoffs = np.sort(rng.standard_normal((4, 15)).astype(np.float32), axis=1)
    r[0, :] = cutoffs[:, 3]  # a value equal to a cut-off goes below it, as searchsorted's left side
    got = K.bucketize(r, cutoffs)
    expected = np.stack([np.searchsorted(cutoffs[d], r[:, d]) for d in range(4)], axis=1)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
def test_byte_tables_decode_every_position(nbits):
    rng = np.random.default_rng(nbits)
    weights = rng.standard_normal((DIM, 1 << nbits)).astype(np.float32)
    buckets = rng.integers(0, 1 << nbits, (7, DIM)).astype(np.uint8)
    packed = K.pack_buckets(buckets, nbits)
    tables = K.byte_tables(weights, nbits, DIM)
    decoded = np.stack([np.concatenate([tables[j, row[j]] for j in range(len(row))]) for row in packed])
    assert np.array_equal(decoded, weights[np.arange(DIM), buckets])
    shared = K.byte_tables(weights[0], nbits, DIM)  # one set of weights for all dimensions: the same table at each
    assert all(np.array_equal(shared[j], K.byte_table(weights[0], nbits)) for j in range(len(shared)))


@pytest.mark.parametrize("nbits", [2, 4])
def test_per_dimension_buckets_reconstruct_better(tmp_path, nbits):
    docs = skewed_docs(150)
    x = np.concatenate(docs)
    errors = {}
    for buckets in ("global", "per_dimension"):
        index = make(tmp_path / buckets, docs, nbits, buckets)
        decompressed = np.concatenate(index.vectors(np.arange(len(docs))))
        errors[buckets] = float(((decompressed - x) ** 2).sum(1).mean())
        again = PlaidIndex(tmp_path / buckets)  # persisted: shapes, manifest, identical decompression
        assert again.manifest.settings["buckets"] == buckets
        assert again.weights.shape == ((DIM, 1 << nbits) if buckets == "per_dimension" else (1 << nbits,))
        assert np.array_equal(np.concatenate(again.vectors([2, 0])), np.concatenate(index.vectors([2, 0])))
        query = x[:6]
        exhaustive = PlaidParams(nprobe=8, ncandidates=len(docs))  # brute force
        hits = again.search([query], len(docs), exhaustive)[0]
        ref = np.array([(query @ again.vectors([i])[0].T).max(1).sum() for i in range(len(docs))])
        assert np.allclose(hits.scores, ref[hits.docnos], atol=1e-5) and np.allclose(np.sort(ref)[::-1], hits.scores,
                                                                                     atol=1e-5)
    assert errors["per_dimension"] < 0.8 * errors["global"]


def test_bad_buckets(tmp_path):
    docs = skewed_docs(20)
    with pytest.raises(InputError, match="buckets"):
        PlaidIndex.create(tmp_path / "a", INFO, docs, nbits=2, num_centroids=4, buckets="per_token")
    index = make(tmp_path / "b", docs, 2, "per_dimension")
    codec = write_container(tmp_path / "b" / "codec_0123456789ab.rsx", {  # weights that do not match the dimension
        "centroids": index.centroids, "cutoffs": index.cutoffs, "weights": np.zeros((DIM + 1, 4), np.float32)})
    edit_manifest(index.path, lambda m: m["files"].update(codec=codec.to_json()))
    with pytest.raises(IndexFormatError, match="buckets"):
        PlaidIndex(index.path)


def test_candidate_stages(tmp_path):
    docs = skewed_docs(80, seed=2)
    index = make(tmp_path / "idx", docs, 2, "global")
    index.delete(["d5"])
    query = docs[7][:4]
    everything = index.candidates(query, nprobe=8)  # every centroid probed, no cut: every live document
    assert everything.tolist() == [i for i in range(len(docs)) if i != 5]
    probed = index.candidates(query, nprobe=1)
    assert set(probed.tolist()) <= set(everything.tolist()) and 7 in probed
    kept = index.candidates(query, nprobe=8, ncandidates=10)
    assert len(kept) == 10 and (np.diff(kept) > 0).all() and set(kept.tolist()) <= set(everything.tolist())
    hits = index.search([query], 5, PlaidParams(nprobe=8, ncandidates=10))[0]
    assert set(hits.docnos.tolist()) <= set(kept.tolist())


def test_eight_bits_nearly_lossless(tmp_path):
    docs = skewed_docs(150, seed=3)
    x = np.concatenate(docs)
    errors = []
    for nbits in (4, 8):
        index = make(tmp_path / f"b{nbits}", docs, nbits, "per_dimension")
        assert index.chunks[0].residuals.shape == (len(x), DIM * nbits // 8)
        errors.append(float(np.abs(np.concatenate(index.vectors(np.arange(len(docs)))) - x).mean()))
    assert errors[1] < 0.5 * errors[0]
