"""DenseIndex / DenseIndexWriter: exactness, persistence, incremental changes, bad input, crash safety."""

import json
import shutil

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError, RankstackError  # noqa: E402
from rankstack.index import commit  # noqa: E402
from rankstack.index.dense import DenseIndex, DenseIndexWriter, to_run  # noqa: E402
from rankstack.index.search import DenseParams  # noqa: E402


def run_of(index, q, k, qids=None):
    """The hits of query vectors as a Run (query ids "0", "1", ...)."""
    rows, scores = index.search_arrays(q, k)
    return to_run(qids or [str(i) for i in range(len(rows))], rows, scores, index.doc_ids)

DIM = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def data(n=300, nq=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, DIM)).astype(np.float32), rng.standard_normal((nq, DIM)).astype(np.float32),
            [f"doc{i}" for i in range(n)])


def build(path, factory="Flat", metric="ip", n=300, store=None, seed=0):
    x, q, ids = data(n, seed=seed)
    with DenseIndexWriter(path, factory=factory, dim=DIM, metric=metric, store_vectors=store) as w:
        w.add(ids, x)
    return x, q, ids


def brute(x, q, metric, k, live=None):
    scores = q @ x.T if metric == "ip" else -((q[:, None, :] - x[None]) ** 2).sum(-1)
    if live is not None:
        scores = np.where(live[None], scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_equals_numpy_brute_force(tmp_path, metric):
    x, q, ids = build(tmp_path, metric=metric)
    index = DenseIndex(tmp_path)
    rows, scores = index.search_arrays(q, 10)
    ref_rows, ref_scores = brute(x, q, metric, 10)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)
    assert (rows == ref_rows).mean() > 0.99  # ties aside, the same documents in the same order
    run = run_of(index, q, 10, qids=[f"q{i}" for i in range(len(q))])
    assert run.ids("q3") == [ids[i] for i in rows[3]]
    assert list(run) == [f"q{i}" for i in range(len(q))]


def test_flat_with_deletes_equals_brute_force_and_gpu_style_filter(tmp_path):
    x, q, ids = build(tmp_path)
    gone = ids[::3]
    with DenseIndexWriter(tmp_path) as w:
        w.delete(gone)
    index = DenseIndex(tmp_path)
    live = np.ones(len(ids), bool)
    live[::3] = False
    rows, scores = index.search_arrays(q, 10)
    ref_rows, ref_scores = brute(x, q, "ip", 10, live)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    index.on_gpu = True  # the path GPU indexes take (no IDSelector): fetch more, filter deleted rows afterwards
    rows2, scores2 = index.search_arrays(q, 10)
    np.testing.assert_array_equal(rows2, ref_rows)
    assert len(index) == len(ids) - len(gone) and index.position(ids[0]) == -1 and index.position(ids[1]) == 1


@pytest.mark.parametrize("factory", ["HNSW16", "IVF8,Flat", "IVF8,PQ4x4np"])
def test_persistence_round_trip(tmp_path, factory):
    x, q, ids = build(tmp_path / "a", factory=factory, store="float32")
    first = DenseIndex(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    again = DenseIndex(tmp_path / "b")
    for options in ({}, {"nprobe": 8, "ef_search": 64}):
        r1, s1 = first.search_arrays(q, 10, DenseParams(**options))
        r2, s2 = again.search_arrays(q, 10, DenseParams(**options))
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(s1, s2)
    assert again.factory == factory and again.dim == DIM and again.metric == "ip" and len(again) == len(ids)
    # exhaustive knobs find the exact top hits (PQ: after exact rescoring of the candidates)
    exact_rows, _ = brute(x, q, "ip", 5)
    rows, _ = again.search_arrays(q, 5, DenseParams(nprobe=8, ef_search=300, rescore=True, rescore_depth=100))
    assert (rows == exact_rows).mean() >= 0.9


def test_rescore_equals_exact_scores_of_candidates(tmp_path):
    x, q, ids = build(tmp_path, factory="IVF8,PQ4x4np", store="float16")
    index = DenseIndex(tmp_path)
    rows, scores = index.search_arrays(q, 5, DenseParams(nprobe=8, rescore=True, rescore_depth=40))
    cand, _ = index.search_arrays(q, 40, DenseParams(nprobe=8))
    x16 = x.astype(np.float16).astype(np.float32)
    for i in range(len(q)):
        exact = x16[cand[i]] @ q[i]
        np.testing.assert_allclose(scores[i], np.sort(exact)[::-1][:5], rtol=1e-4, atol=1e-4)
        assert set(rows[i]) <= set(cand[i])


def test_ivf_trains_on_first_add_and_reuses_quantiser(tmp_path):
    x, q, ids = data(400)
    with DenseIndexWriter(tmp_path, factory="IVF16,PQ4x8np", dim=DIM) as w:
        assert w.min_train_vectors == 256
        with pytest.raises(InputError, match="at least 256 vectors"):
            w.add(ids[:100], x[:100])
        assert len(w) == 0
        w.add(ids[:300], x[:300])
    first = DenseIndex(tmp_path)  # (keep it referenced: FAISS sub-objects do not own their parent)
    centroids = faiss.extract_index_ivf(first.index).quantizer.reconstruct_n(0, 16)
    with DenseIndexWriter(tmp_path) as w:
        assert w.min_train_vectors == 0
        w.add(ids[300:310], x[300:310])  # far fewer than needed to train: reuses the trained quantiser
    index = DenseIndex(tmp_path)
    np.testing.assert_array_equal(faiss.extract_index_ivf(index.index).quantizer.reconstruct_n(0, 16), centroids)
    assert len(index) == 310


def test_incremental_add_delete_readd(tmp_path):
    x, q, ids = data(60)
    with DenseIndexWriter(tmp_path, factory="Flat", dim=DIM, store_vectors="float32") as w:
        w.add(ids[:40], x[:40])
    with DenseIndexWriter(tmp_path) as w:
        w.add(ids[40:], x[40:])
        w.delete(["doc5", "doc45"])
    index = DenseIndex(tmp_path)
    assert len(index) == 58 and index.position("doc5") == -1 and index.position("doc45") == -1
    # re-adding an id replaces its vector: the query equal to the new vector finds it first
    new = np.full((1, DIM), 3.0, dtype=np.float32)
    with DenseIndexWriter(tmp_path) as w:
        w.add(["doc7", "doc5"], np.vstack([new, new * 0.5]))
    index = DenseIndex(tmp_path)
    assert len(index) == 59 and index.total == 62
    run = run_of(index, new, 2)
    assert run.ids("0") == ["doc7", "doc5"]
    np.testing.assert_allclose(index.vectors([index.position("doc7")]), new)
    # the old doc7 vector is no longer found
    rows, _ = index.search_arrays(x[7], 60)
    assert 7 not in rows[0]
    # compaction drops deleted rows and keeps the results
    before = run_of(index, q, 10)
    with DenseIndexWriter(tmp_path) as w:
        w.compact()
    after = DenseIndex(tmp_path)
    assert after.total == 59 and not after.deleted.any()
    for qid in before:
        assert run_of(after, q, 10).ids(qid) == before.ids(qid)


def test_bad_input(tmp_path):
    x, q, ids = build(tmp_path)
    index = DenseIndex(tmp_path)
    with pytest.raises(InputError, match="8-dimensional"):
        index.search_arrays(np.zeros((2, 5), np.float32))
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match="row 1"):
        index.search_arrays(bad)
    with pytest.raises(InputError, match="k must be"):
        index.search_arrays(q, 0)
    with pytest.raises(IncompatibleIndexError, match="stored vectors"):
        index.search_arrays(q, 3, DenseParams(rescore=True))
    with DenseIndexWriter(tmp_path) as w:
        with pytest.raises(InputError, match="unknown document id 'nope'"):
            w.delete(["doc1", "nope"])
        assert len(w) == len(ids)  # nothing deleted
        with pytest.raises(InputError, match="8-dimensional"):
            w.add(["z"], np.zeros((1, 3)))
        with pytest.raises(InputError, match="infinite"):
            w.add(["z"], np.full((1, DIM), np.inf))
        with pytest.raises(InputError, match="twice"):
            w.add(["z", "z"], np.zeros((2, DIM)))
        with pytest.raises(InputError, match="2 document ids for 1"):
            w.add(["y", "z"], np.zeros((1, DIM)))
    with pytest.raises(IncompatibleIndexError, match="factory='Flat'"):
        DenseIndexWriter(tmp_path, factory="HNSW32")
    with pytest.raises(IncompatibleIndexError, match="model"):
        DenseIndexWriter(tmp_path / "enc", factory="Flat", dim=DIM, encoder={"model": "a", "content_hash": "1"}).commit()
        DenseIndexWriter(tmp_path / "enc", encoder={"model": "b", "content_hash": "2"})
    empty = tmp_path / "empty"
    with DenseIndexWriter(empty, factory="HNSW16", dim=DIM):
        pass
    with pytest.raises(InputError, match="no documents"):
        DenseIndex(empty).search_arrays(q)
    with pytest.raises(InputError, match="unknown metric"):
        DenseIndexWriter(tmp_path / "m", factory="Flat", dim=DIM, metric="cosine")
    with pytest.raises(InputError, match="FAISS cannot build"):
        DenseIndexWriter(tmp_path / "f", factory="NotAnIndex", dim=DIM)


def test_writer_lock(tmp_path):
    build(tmp_path)
    w = DenseIndexWriter(tmp_path)
    try:
        with pytest.raises(RankstackError, match="already open for writing"):
            DenseIndexWriter(tmp_path)
    finally:
        w.close()
    DenseIndexWriter(tmp_path).close()


def test_corrupt_or_missing_files(tmp_path):
    build(tmp_path)
    text = (tmp_path / "manifest.json").read_text()
    manifest = json.loads(text)
    with pytest.raises(IndexFormatError, match="does not exist"):
        DenseIndex(tmp_path / "x")
    (tmp_path / "x").mkdir()
    with pytest.raises(IndexFormatError, match="no manifest.json"):
        DenseIndex(tmp_path / "x")
    (tmp_path / "manifest.json").write_text('{"format": "rankstack-dense-index", "version": 2, "factory"')
    with pytest.raises(IndexFormatError, match="is damaged .not JSON"):
        DenseIndex(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(IndexFormatError, match="version 99"):
        DenseIndex(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "settings": {**manifest["settings"], "dim": 7}}))
    with pytest.raises(IndexFormatError, match="fails its checksum"):
        DenseIndex(tmp_path)
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    body["settings"] = {k: v for k, v in body["settings"].items() if k != "dim"}
    (tmp_path / "manifest.json").write_text(json.dumps({**body, "checksum": commit._checksum(body)}))
    with pytest.raises(IndexFormatError, match="lacks dim"):
        DenseIndex(tmp_path)
    (tmp_path / "manifest.json").write_text(text)
    faiss_file = tmp_path / manifest["segments"][0]["files"]["faiss"][0]
    faiss_file.write_bytes(b"garbage")
    with pytest.raises(IndexFormatError, match=f"{faiss_file.name} is damaged"):
        DenseIndex(tmp_path)


def test_crash_during_commit_keeps_last_commit(tmp_path, monkeypatch):
    x, q, ids = build(tmp_path, n=100, store="float16")
    before = run_of(DenseIndex(tmp_path), q, 5)
    files_before = sorted(p.name for p in tmp_path.iterdir())

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the manifest is replaced")

    monkeypatch.setattr(commit, "write_atomic", crash)
    w = DenseIndexWriter(tmp_path)
    w.delete(ids[:50])
    w.add(["new"], np.ones((1, DIM), np.float32))
    with pytest.raises(OSError, match="simulated"):
        w.commit()
    w.close()
    monkeypatch.undo()
    index = DenseIndex(tmp_path)  # the last commit, intact
    assert len(index) == 100 and index.position("new") == -1
    for qid in before:
        assert run_of(index, q, 5).hits(qid) == before.hits(qid)
    assert len(list(tmp_path.iterdir())) > len(files_before)  # the crashed commit's files are still there...
    DenseIndexWriter(tmp_path).close()  # ... until the next writer removes them
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before


@pytest.mark.skipif(not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0, reason="needs FAISS with a GPU")
def test_gpu_search_equals_cpu(tmp_path):
    x, q, ids = build(tmp_path)
    with DenseIndexWriter(tmp_path) as w:
        w.delete(ids[::4])
    cpu, gpu = DenseIndex(tmp_path, gpu=False), DenseIndex(tmp_path, gpu=True)
    assert gpu.on_gpu
    r1, s1 = cpu.search_arrays(q, 10)
    r2, s2 = gpu.search_arrays(q, 10)
    np.testing.assert_allclose(s1, s2, rtol=1e-4, atol=1e-4)
    assert (r1 == r2).mean() > 0.95


def test_hnsw_returns_k_hits_or_says_why_not(tmp_path):
    rng = np.random.default_rng(0)
    with DenseIndexWriter(tmp_path, factory="HNSW32", dim=DIM, metric="ip", encoder={}) as w:
        w.add([f"d{i}" for i in range(2000)], rng.standard_normal((2000, DIM)))
    q = rng.standard_normal((5, DIM)).astype(np.float32)
    rows, _ = DenseIndex(tmp_path).search_arrays(q, 1000)  # the graph is searched at efSearch >= k
    assert (rows >= 0).sum(1).min() >= 990
    with DenseIndexWriter(tmp_path) as w:
        w.delete([f"d{i}" for i in range(0, 2000, 2)])
    with pytest.warns(UserWarning, match="fewer than k=1000 hits from HNSW32.*ef_search"):
        rows, _ = DenseIndex(tmp_path).search_arrays(q, 1000)  # 1,000 live: the filtered graph misses some
    rows, _ = DenseIndex(tmp_path).search_arrays(q, 1000, DenseParams(ef_search=4000))
    assert ((rows >= 0).sum(1) == 1000).all()
