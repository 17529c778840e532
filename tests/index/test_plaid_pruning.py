"""PLAID's candidate stages beyond the first centroid interaction: centroid pruning (centroid_threshold) and a
second, full centroid interaction before decompression (ndecompress)."""

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.index import plaid_kernels as K
from rankstack.index.plaid import PlaidIndex
from rankstack.index.search import PlaidParams
from tests.index.test_plaid_buckets import INFO, skewed_docs


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    docs = skewed_docs(120, seed=3)
    index = PlaidIndex.create(tmp_path_factory.mktemp("prune") / "idx", INFO, docs, nbits=2, num_centroids=8)
    half = len(docs) // 2  # two chunks: the stages pick across them
    index.add([f"d{i}" for i in range(half)], docs[:half])
    index.add([f"d{i}" for i in range(half, len(docs))], docs[half:])
    return index


def _interaction(index, query, docnos):
    """Centroid interaction by NumPy: per document, the sum over query tokens of the best centroid score."""
    scores = query @ index.centroids.T
    out = []
    for d in docnos.tolist():
        chunk = next(c for c in index.chunks if c.base <= d < c.base + c.num_docs)
        local = d - chunk.base
        codes = np.asarray(chunk.codes[chunk.offsets[local]:chunk.offsets[local + 1]])
        out.append(scores[:, codes].max(1).sum())
    return np.array(out, np.float32)


def test_pruned_interaction_skips_unkept_centroids():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 6, 40).astype(np.int32)
    offsets = np.array([0, 10, 25, 40], np.int64)
    scores = rng.standard_normal((6, 3)).astype(np.float32)  # [centroids, query tokens]
    docs = np.arange(3, dtype=np.int32)
    everything = np.ones(6, bool)
    assert np.allclose(K.pruned_centroid_interaction(codes, offsets, docs, scores, everything),
                       K.centroid_interaction(codes, offsets, docs, scores))
    kept = np.array([True, False, True, False, False, True])
    got = K.pruned_centroid_interaction(codes, offsets, docs, scores, kept)
    for i in range(3):
        mine = codes[offsets[i]:offsets[i + 1]]
        mine = mine[kept[mine]]
        assert got[i] == pytest.approx(scores[mine].max(0).sum() if len(mine) else -np.inf)


def test_ndecompress_keeps_the_best_by_full_interaction(index):
    query = skewed_docs(1, seed=9)[0]
    first = index.candidates(query, nprobe=8, ncandidates=40)
    kept = index.candidates(query, nprobe=8, ncandidates=40, ndecompress=12)
    assert len(kept) == 12 and np.all(np.diff(kept) > 0) and set(kept) <= set(first)
    approx = dict(zip(first.tolist(), _interaction(index, query, first)))
    twelfth = sorted(approx.values(), reverse=True)[11]
    assert min(approx[d] for d in kept.tolist()) >= twelfth - 1e-5  # the best 12 (up to ties)


def test_centroid_threshold(index):
    query = skewed_docs(1, seed=10)[0]
    plain = index.candidates(query, nprobe=8, ncandidates=40)
    # A threshold below every score prunes nothing.
    assert np.array_equal(index.candidates(query, nprobe=8, ncandidates=40, centroid_threshold=-10.0), plain)
    # A threshold keeping only the best centroid: the candidates are the documents holding it, best first.
    scores = query @ index.centroids.T
    best = scores.max(0)
    pruned = index.candidates(query, nprobe=8, ncandidates=40, centroid_threshold=float(best.max()))
    assert len(pruned) == 40
    holders = {d for d in range(index.num_docs) if int(np.argmax(best)) in _codes(index, d)}
    assert set(pruned.tolist()) <= holders if len(holders) >= 40 else holders <= set(pruned.tolist())


def _codes(index, d):
    chunk = next(c for c in index.chunks if c.base <= d < c.base + c.num_docs)
    local = d - chunk.base
    return set(np.asarray(chunk.codes[chunk.offsets[local]:chunk.offsets[local + 1]]).tolist())


def test_search_with_the_stages(index):
    query = skewed_docs(1, seed=11)[0]
    exhaustive = index.search([query], 5, PlaidParams(nprobe=8, ncandidates=index.num_docs))[0]
    staged = index.search([query], 5, PlaidParams(nprobe=8, ncandidates=index.num_docs,
                                                  ndecompress=index.num_docs))[0]
    assert np.array_equal(exhaustive.docnos, staged.docnos)
    narrow = index.search([query], 5, PlaidParams(nprobe=8, ncandidates=60, ndecompress=20, centroid_threshold=0.0))[0]
    assert len(narrow.docnos) == 5 and np.all(np.diff(narrow.scores) <= 0)
    with pytest.raises(InputError, match="ndecompress"):
        index.search([query], 5, PlaidParams(ndecompress=3))
