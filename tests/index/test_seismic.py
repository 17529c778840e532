"""SeismicIndex: exact without pruning (property), recall rising with the knobs, quantised summaries bound their
blocks, 16-bit document weights, on-disk safety, bad input."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack.errors import IndexFormatError, InputError
from rankstack.index import seismic_kernels as K
from rankstack.index.container import write_container
from rankstack.index.search import SeismicParams, SparseQueries
from rankstack.index.seismic import SeismicIndex
from tests.index.manifests import edit_manifest



def search(index, queries, k=10, **knobs):
    """Search a matrix or (component ids, weights) pairs over the index's components."""
    return index.search(SparseQueries.over_columns(queries, index.dim), k, SeismicParams(**knobs))

def random_matrix(rows, dim, density, seed):
    m = sp.random(rows, dim, density=density, random_state=seed, dtype=np.float32, format="csr")
    m.data = (m.data + 0.01).astype(np.float32)  # strictly positive weights
    return m


def rounded(d):
    """d as a 16-bit index stores it: multiples of max / 65535, at least one step."""
    if d.nnz == 0:
        return d
    scale = d.data.max() / 65535
    out = d.copy()
    out.data = (np.clip(np.rint(d.data / scale), 1, 65535) * scale).astype(np.float32)
    return out


def exact_top(q, d, k):
    scores = (q @ d.T).toarray()
    return [np.sort(row[row > 0])[::-1][:k] for row in scores], scores


def assert_exact(results, q, d, k):
    tops, scores = exact_top(q, d, k)
    for i, (docs, got) in enumerate(results):
        assert len(got) == len(tops[i])
        assert np.allclose(got, tops[i], rtol=1e-5)                # the k best scores...
        assert np.allclose(scores[i, docs], got, rtol=1e-5)        # ...of the documents returned
        assert np.all(np.diff(got) <= 0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 120), dim=st.integers(1, 60), density=st.floats(0.01, 0.5), k=st.integers(1, 12),
       seed=st.integers(0, 2**16), fraction=st.floats(0.05, 1.0), small_list=st.integers(0, 8),
       value_bits=st.sampled_from([16, 32]))
def test_no_pruning_is_exact(tmp_path_factory, n, dim, density, k, seed, fraction, small_list, value_bits):
    d = random_matrix(n, dim, density, seed)
    q = random_matrix(6, dim, 0.3, seed + 1)
    index = SeismicIndex.build(tmp_path_factory.mktemp("s") / "idx", d, n_postings=None, summary_energy=1.0,
                               centroid_fraction=fraction, small_list=small_list, seed=seed, value_bits=value_bits)
    stored = d if value_bits == 32 else rounded(d)  # exact over the weights as stored
    assert_exact(search(index, q, k, query_cut=None, heap_factor=1.0), q, stored, k)


def test_quantised_summaries_bound_their_values():
    rng = np.random.default_rng(0)
    offsets = np.array([0, 1, 5, 5, 300], np.int64)  # one entry, a few, none, many
    values = (rng.random(300) ** 3 * 4 + 1e-6).astype(np.float32)
    values[7] = values[8] = np.float32(2.5)  # ties at the maximum of their block
    scales = np.zeros(4, np.float32)
    codes = np.zeros(300, np.uint8)
    K.quantize_summaries(offsets, values, scales, codes)
    stored = codes.astype(np.float32) * np.repeat(scales, np.diff(offsets))
    assert np.all(stored >= values)                                   # an upper bound...
    assert np.all(stored - values <= np.repeat(scales, np.diff(offsets)) * 1.0001)  # ...within one step
    assert codes[1:5].max() == 255 and codes[5:].max() == 255
    tiny = np.array([1e-44, 5e-45], np.float32)  # max / 255 underflows to zero
    K.quantize_summaries(np.array([0, 2], np.int64), tiny, scales[:1], codes[:2])
    assert np.all(codes[:2].astype(np.float32) * scales[0] >= tiny)


def test_16_bit_weights_and_wide_vocabularies(tmp_path):
    d = random_matrix(300, 70_000, 0.0005, 7)  # more components than 16 bits hold: the split layout
    q = random_matrix(8, 70_000, 0.002, 8).tolil()
    q[0, d[0].indices] = 1.0  # at least one query with hits
    q = q.tocsr()
    wide = SeismicIndex.build(tmp_path / "wide", d, n_postings=None, summary_energy=1.0)
    assert wide.manifest.settings["forward"] == "split"
    assert_exact(search(wide, q, 5, query_cut=None, heap_factor=1.0), q, rounded(d), 5)
    narrow = random_matrix(300, 500, 0.05, 9)
    q = random_matrix(8, 500, 0.05, 10)
    fast = SeismicIndex.build(tmp_path / "16", narrow, n_postings=None, summary_energy=1.0)
    full = SeismicIndex.build(tmp_path / "32", narrow, n_postings=None, summary_energy=1.0, value_bits=32)
    assert (fast.manifest.settings["forward"], full.manifest.settings["forward"]) == ("packed", "split")
    for (docs, got), (_, want) in zip(search(fast, q, 10, query_cut=None, heap_factor=1.0),
                                      search(full, q, 10, query_cut=None, heap_factor=1.0)):
        assert np.allclose(got, want, rtol=1e-3)  # 16-bit rounding moves scores only slightly


def test_recall_rises_with_the_knobs(tmp_path):
    d = random_matrix(2000, 300, 0.03, 1)
    q = random_matrix(40, 300, 0.03, 2)
    index = SeismicIndex.build(tmp_path / "idx", d, n_postings=60, summary_energy=0.4)
    _, scores = exact_top(q, d, 10)
    truth = [set(np.argsort(-row, kind="stable")[:10][row[np.argsort(-row, kind="stable")[:10]] > 0]) for row in scores]

    def recall(**knobs):
        res = search(index, q, 10, **knobs)
        return np.mean([len(set(r[0]) & t) / max(len(t), 1) for r, t in zip(res, truth)])

    by_heap = [recall(query_cut=None, heap_factor=h) for h in (1.0, 0.9, 0.6, 0.3)]  # lower: more blocks
    by_cut = [recall(query_cut=c, heap_factor=0.5) for c in (1, 3, 100)]
    assert all(b >= a - 0.02 for a, b in zip(by_heap, by_heap[1:])) and by_heap[-1] > by_heap[0]
    assert all(b >= a - 0.02 for a, b in zip(by_cut, by_cut[1:])) and by_cut[-1] > by_cut[0]
    assert by_heap[-1] > 0.8


def reference_search(index, qc, qv, query_cut, heap_factor, k):
    """Seismic's search as rankstack.index.seismic states it, one step at a time in float32: the query's
    `query_cut` heaviest terms, each term's blocks in list order, a block skipped when its summary score is
    below heap_factor x the k-th best score so far, each document scored once (four partial sums, as the
    kernel adds them)."""
    a, f32 = index.arrays, np.float32
    scale = index._value_scale
    dense = np.zeros(index.dim, np.float32)
    dense[qc] = qv * scale
    if "fwd_packed" in a:
        packed = a["fwd_packed"]
        comps, values = (packed & 0xFFFF).astype(np.int64), (packed >> 16).astype(np.float32)
    else:
        comps, values = a["fwd_comps"].astype(np.int64), a["fwd_values"].astype(np.float32)

    def row_dot(d):
        lo, hi = a["fwd_offsets"][d], a["fwd_offsets"][d + 1]
        part = [f32(0)] * 4
        n4 = (hi - lo) & ~3
        for i in range(hi - lo):
            j = i % 4 if i < n4 else 0
            part[j] = f32(part[j] + f32(dense[comps[lo + i]] * values[lo + i]))
        return f32(f32(part[0] + part[1]) + f32(part[2] + part[3]))

    heap: list[tuple[float, int]] = []  # (score, docno), the worst first
    seen = set()
    for i in np.argsort(-qv, kind="stable")[:query_cut]:
        t = qc[i]
        b0, b1 = a["term_blocks"][t], a["term_blocks"][t + 1]
        acc = np.zeros(b1 - b0, np.float32)
        for c, w in zip(qc, qv):
            for j in range(a["term_comps"][t], a["term_comps"][t + 1]):
                if a["summary_comps"][j] == c:
                    for e in range(a["summary_comp_offsets"][j], a["summary_comp_offsets"][j + 1]):
                        b = a["summary_blocks"][e]
                        acc[b] = f32(acc[b] + f32(w * f32(a["summary_codes"][e])))
        for bi in range(b1 - b0):
            limit = f32(f32(heap_factor) * f32(heap[0][0])) if len(heap) == k else None
            if limit is not None and f32(acc[bi] * a["summary_scales"][b0 + bi]) < limit:
                continue
            for d in a["block_docs"][a["block_offsets"][b0 + bi]:a["block_offsets"][b0 + bi + 1]]:
                if d in seen:
                    continue
                seen.add(d)
                s = row_dot(d)
                if s > 0 and (len(heap) < k or (s, -d) > (heap[0][0], -heap[0][1])):
                    heap = sorted([*heap, (s, int(d))], key=lambda h: (h[0], -h[1]))[-k:]
    best = heap[::-1]
    return np.array([d for _, d in best], np.int64), np.array([s for s, _ in best], np.float32)


@pytest.mark.parametrize("query_cut, heap_factor", [(2, 0.9), (4, 0.6), (None, 0.3)])
def test_approximate_search_follows_its_definition(tmp_path, query_cut, heap_factor):
    """The kernel (which requests a block's rows before scoring them, and sums in four parts) returns exactly
    what the definition returns, pruning included."""
    d = random_matrix(1500, 60, 0.1, 7)  # many small blocks per list: the threshold skips some of them
    q = random_matrix(25, 60, 0.15, 8)
    index = SeismicIndex.build(tmp_path / "idx", d, n_postings=150, centroid_fraction=0.5, summary_energy=0.5)
    queries = SparseQueries.over_columns(q, index.dim)
    results = index.search(queries, 5, SeismicParams(query_cut, heap_factor))
    for r, (docs, scores) in enumerate(results):
        span = slice(queries.indptr[r], queries.indptr[r + 1])
        qc, qv = queries.indices[span], queries.data[span]
        want_docs, want_scores = reference_search(index, qc, qv, query_cut or len(qc), heap_factor, 5)
        assert docs.tolist() == want_docs.tolist()
        assert scores.tolist() == want_scores.tolist()


def test_reopen_and_threads(tmp_path):
    d = random_matrix(500, 100, 0.05, 3)
    q = random_matrix(30, 100, 0.05, 4)
    built = SeismicIndex.build(tmp_path / "idx", d, n_postings=40, metadata={"source": "test"})
    opened = SeismicIndex(tmp_path / "idx")
    assert opened.metadata == {"source": "test"} and len(opened) == 500
    assert opened.params["n_postings"] == 40
    a = search(built, q, 5, threads=1)
    b = search(opened, q, 5, threads=2)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    docs, scores = search(opened, [(q[0].indices, q[0].data)], 5)[0]
    assert np.array_equal(docs, a[0][0])
    SeismicIndex.build(tmp_path / "idx", d[:100], n_postings=40)  # rebuild in place: one data folder remains
    assert len(SeismicIndex(tmp_path / "idx")) == 100
    assert len([p for p in (tmp_path / "idx").iterdir() if p.name.startswith("data_")]) == 1
    assert {p.name for p in (tmp_path / "idx").iterdir()} == {"manifest.json", "write.lock", *SeismicIndex(
        tmp_path / "idx").manifest.file_names()}  # the old build's file is gone


def test_half_written_or_corrupt(tmp_path):
    d = random_matrix(200, 50, 0.1, 5)
    path = tmp_path / "idx"
    with pytest.raises(IndexFormatError, match="does not exist"):
        SeismicIndex(path)
    path.mkdir()
    with pytest.raises(IndexFormatError, match="no manifest"):
        SeismicIndex(path)
    SeismicIndex.build(path, d)
    data = path / SeismicIndex(path).manifest.segments[0].files["data"].name
    data.write_bytes(data.read_bytes()[:-100])  # truncated
    with pytest.raises(IndexFormatError, match="truncated"):
        SeismicIndex(path)
    index = SeismicIndex.build(path, d)
    arrays = {name: np.array(index.container[name]) for name in index.container}
    arrays["block_docs"][:] = 10**6  # written wrong: valid checksums, documents that do not exist
    wrong = write_container(path / "data_0123456789ab.rsx", arrays)
    edit_manifest(path, lambda m: m["segments"][0]["files"].update(data=wrong.to_json()))
    opened = SeismicIndex(path)
    with pytest.raises(IndexFormatError, match="block_docs holds values outside"):
        search(opened, random_matrix(2, 50, 0.2, 9), 5)
    SeismicIndex.build(path, d)
    for key, value in (("forward", "sideways"), ("value_scale", -1)):
        text = (path / "manifest.json").read_text()
        edit_manifest(path, lambda m: m["settings"].update({key: value}))
        with pytest.raises(IndexFormatError, match=key if key == "value_scale" else "layout"):
            SeismicIndex(path)
        (path / "manifest.json").write_text(text)
    manifest = json.loads(text)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError):
        SeismicIndex(path)
    for version in (1, 2, 3, 99):  # 1-3: earlier layouts (float summaries, float32 forward index, .npy folders)
        manifest["version"] = version
        (path / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(IndexFormatError, match="version"):
            SeismicIndex(path)


def test_bad_input(tmp_path):
    d = random_matrix(50, 20, 0.2, 6)
    with pytest.raises(InputError):
        SeismicIndex.build(tmp_path / "a", d.toarray())
    neg = d.copy()
    neg.data[0] = -1
    with pytest.raises(InputError):
        SeismicIndex.build(tmp_path / "b", neg)
    with pytest.raises(InputError):
        SeismicIndex.build(tmp_path / "c", d, summary_energy=0)
    with pytest.raises(InputError, match="value_bits"):
        SeismicIndex.build(tmp_path / "c", d, value_bits=8)
    index = SeismicIndex.build(tmp_path / "d", d)
    with pytest.raises(InputError, match="21 columns"):
        search(index, sp.csr_matrix((1, 21), dtype=np.float32))
    with pytest.raises(InputError, match="21 columns, the index 20 components"):
        index.search(SparseQueries.over_columns(sp.csr_matrix((1, 21), dtype=np.float32), 21))
    with pytest.raises(InputError):
        search(index, [(np.array([25]), np.array([1.0]))])
    with pytest.raises(InputError):
        search(index, [(np.array([1]), np.array([np.nan]))])
    with pytest.raises(InputError):
        search(index, [(np.array([1, 1]), np.array([1.0, 2.0]))])
    with pytest.raises(InputError):
        search(index, [(np.array([1]), np.array([1.0]))], k=0)
    empty = search(index, [(np.array([], np.int64), np.array([], np.float32)), (np.array([3]), np.array([0.0]))])
    assert all(len(docs) == 0 for docs, _ in empty)
