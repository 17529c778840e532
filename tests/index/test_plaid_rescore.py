"""PLAID stored full-precision vectors: exact rescoring, persistence, updates, errors."""

import numpy as np
import pytest

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.index.search import PlaidParams
from rankstack.index.plaid import PlaidIndex
from tests.index.manifests import edit_manifest

DIM = 32
INFO = {"model": "tiny", "content_hash": "sha256:abc", "encoder": "multivector", "dimension": DIM, "projection": None}
EVERYTHING = dict(nprobe=16, ncandidates=10_000)  # every centroid probed, every document kept


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_docs(n, seed=0, topics=12):
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((topics, DIM)))
    return [unit(centres[rng.integers(0, topics, t)] + 0.35 * rng.standard_normal((t, DIM)))
            for t in rng.integers(2, 25, n)]


def rounded(docs, dtype="float16"):
    return [d.astype(dtype).astype(np.float32) for d in docs]


def brute_force(query, docs):
    return np.array([(query @ d.T).max(1).sum() for d in docs], dtype=np.float32)


def queries(n=5, seed=9):
    rng = np.random.default_rng(seed)
    return [unit(rng.standard_normal((int(rng.integers(3, 9)), DIM))) for _ in range(n)]


@pytest.fixture
def docs():
    return clustered_docs(120)


def make(path, docs, store_vectors="float16", nbits=2):
    index = PlaidIndex.create(path, INFO, docs, nbits=nbits, num_centroids=16, store_vectors=store_vectors)
    index.add([f"d{i}" for i in range(len(docs))], docs)
    return index


def check_exact(index, live_docs: dict, dtype="float16"):
    """Rescored search with every document kept == brute-force MaxSim over the stored-precision vectors."""
    ids = list(live_docs)
    vectors = rounded([live_docs[i] for i in ids], dtype)
    for q in queries():
        expected = brute_force(q, vectors)
        order = np.argsort(-expected, kind="stable")
        for k in (10, len(ids)):
            hits = index.search([q], k, PlaidParams(rescore=True, **EVERYTHING))[0]
            assert index.doc_ids.take(hits.docnos) == [ids[i] for i in order[:k]]
            assert np.allclose(hits.scores, expected[order[:k]], rtol=1e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_rescore_with_every_document_kept_is_brute_force(tmp_path, docs, dtype):
    index = make(tmp_path / "idx", docs, store_vectors=dtype)
    check_exact(index, {f"d{i}": d for i, d in enumerate(docs)}, dtype)
    # The decompressed 2-bit scores differ: rescoring really reads the stored vectors.
    q = queries(1)[0]
    decompressed = index.search([q], 10, PlaidParams(**EVERYTHING))[0].scores
    assert not np.allclose(decompressed, index.search([q], 10, PlaidParams(rescore=True, **EVERYTHING))[0].scores)


def test_pruned_rescore_scores_the_kept_candidates_exactly(tmp_path, docs):
    index = make(tmp_path / "idx", docs)
    stored = rounded(docs)
    for q in queries():
        kept = index.candidates(q, nprobe=2, ncandidates=30)
        hits = index.search([q], 10, PlaidParams(nprobe=2, ncandidates=30, rescore=True))[0]
        expected = brute_force(q, [stored[i] for i in kept])
        top = np.argsort(-expected, kind="stable")[:10]
        assert np.array_equal(hits.docnos, kept[top])
        assert np.allclose(hits.scores, expected[top], rtol=1e-6, atol=2e-6)


def test_persistence_round_trip(tmp_path, docs):
    index = make(tmp_path / "idx", docs)
    again = PlaidIndex(tmp_path / "idx")
    assert again.vector_dtype == "float16" and again.manifest.settings["vector_dtype"] == "float16"
    assert again.chunks[0].stored.dtype == np.float16 and not again.chunks[0].stored.flags.writeable
    assert again.chunks[0].stored.shape == (sum(len(d) for d in docs), DIM)
    assert all(np.array_equal(a, b) for a, b in zip(again.vectors([7, 2], stored=True), rounded([docs[7], docs[2]])))
    for q in queries():
        a, b = index.search([q], 10, PlaidParams(rescore=True))[0], again.search([q], 10, PlaidParams(rescore=True))[0]
        assert np.array_equal(a.docnos, b.docnos) and np.array_equal(a.scores, b.scores)
    assert "float16 vectors" in repr(again)
    plain = make(tmp_path / "plain", docs, store_vectors=None)
    # codes + residuals, plus 2 bytes per dimension per token
    assert again.size_bytes() - plain.size_bytes() >= again.num_tokens * DIM * 2


def test_add_after_create_and_replace(tmp_path, docs):
    index = make(tmp_path / "idx", docs[:80])
    index.add([f"d{i}" for i in range(80, 120)], docs[80:])
    fresh = clustered_docs(1, seed=5)[0]
    index.add(["d5"], [fresh])  # replaces d5 with new vectors, in a third chunk
    assert len(index.chunks) == 3 and all(c.stored is not None for c in index.chunks)
    live = {f"d{i}": d for i, d in enumerate(docs)}
    live["d5"] = fresh
    for reopened in (index, PlaidIndex(tmp_path / "idx")):
        check_exact(reopened, live)


def test_deleted_documents_never_return(tmp_path, docs):
    index = make(tmp_path / "idx", docs)
    index.delete(["d3", "d7"])
    for reopened in (index, PlaidIndex(tmp_path / "idx")):
        for q in [docs[3][:4], docs[7][:4], *queries()]:
            hits = reopened.search([q], len(docs), PlaidParams(rescore=True, **EVERYTHING))[0]
            assert len(hits.docnos) == len(docs) - 2
            assert not {"d3", "d7"} & set(reopened.doc_ids.take(hits.docnos))
    check_exact(index, {f"d{i}": d for i, d in enumerate(docs) if i not in (3, 7)})


def test_rescore_without_stored_vectors_is_refused(tmp_path, docs):
    index = make(tmp_path / "idx", docs[:30], store_vectors=None)
    assert index.vector_dtype is None and index.chunks[0].stored is None
    assert "vectors" not in index.chunks[0].container
    with pytest.raises(IncompatibleIndexError, match="stored vectors.*store_vectors='float16'"):
        index.search([docs[0]], 5, PlaidParams(rescore=True))[0]
    with pytest.raises(IncompatibleIndexError, match="stored vectors"):
        index.vectors([0], stored=True)
    with pytest.raises(InputError, match="store_vectors"):
        PlaidIndex.create(tmp_path / "bad", INFO, docs, store_vectors="int8")
    assert not (tmp_path / "bad").exists()


def test_missing_or_wrong_stored_vectors_are_a_format_error(tmp_path, docs):
    path = tmp_path / "idx"
    make(path, docs[:30], store_vectors=None)
    edit_manifest(path, lambda m: m["settings"].update(vector_dtype="float16"))  # chunks without vectors
    with pytest.raises(IndexFormatError, match="lacks array 'vectors'"):
        PlaidIndex(path)
    edit_manifest(path, lambda m: m["settings"].update(vector_dtype="bfloat16"))
    with pytest.raises(IndexFormatError, match="vector_dtype"):
        PlaidIndex(path)
    wide = tmp_path / "wide"
    make(wide, docs[:30], store_vectors="float32")
    edit_manifest(wide, lambda m: m["settings"].update(vector_dtype="float16"))  # stored as float32
    with pytest.raises(IndexFormatError, match="does not match the manifest"):
        PlaidIndex(wide)
