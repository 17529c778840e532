"""SparseMatmulScorer: exhaustive scoring by a sparse matrix product equals the inverted index's exact top-k."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from rankstack.errors import InputError  # noqa: E402
from rankstack.index.inverted import InvertedIndex, IndexWriter  # noqa: E402
from rankstack.index.search import InvertedParams, SparseQueries  # noqa: E402
from rankstack.index.sparse_gpu import SparseMatmulScorer  # noqa: E402


def impact_index(path, d):
    """An 8-bit impact index of the rows of d (terms named by column number); returns it and its dequantised matrix."""
    with IndexWriter(path, {"mode": "impact", "store": False}) as w:
        for i in range(d.shape[0]):
            row = d.getrow(i)
            w.add(f"d{i}", {str(j): float(v) for j, v in zip(row.indices, row.data)})
    index = InvertedIndex(path)
    scale = index.settings["impact_scale"]
    deq = d.copy()
    deq.data = (np.clip(np.rint(d.data / scale), 1, 255) * scale).astype(np.float32)
    return index, deq


@pytest.fixture
def data():
    d = sp.random(300, 40, density=0.1, random_state=1, dtype=np.float32, format="csr")
    d.data += 0.05
    q = sp.random(25, 40, density=0.15, random_state=2, dtype=np.float32, format="csr")
    q.data += 0.05
    return d, q


def check_equal(scorer, index, deq, q, k):
    """The same top-k scores as the inverted index's exhaustive search, each the true score of its document."""
    batch = SparseQueries.over_columns(q, q.shape[1])  # one query value for both backends
    exact = index.search(batch, k, InvertedParams("exhaustive"))
    full = (q @ deq.T).toarray()
    for i, ((docs, scores), (_, escores)) in enumerate(zip(scorer.search(batch, k), exact)):
        assert len(scores) == len(escores) and np.allclose(scores, escores, rtol=1e-5)
        assert np.allclose(full[i, docs], scores, rtol=1e-5)


def test_cpu_equals_inverted_index(tmp_path, data):
    d, q = data
    index, deq = impact_index(tmp_path / "idx", d)
    scorer = SparseMatmulScorer(deq, device="cpu", memory_mb=0)  # one query per batch
    assert scorer.batch == 1
    check_equal(scorer, index, deq, q, 10)
    check_equal(SparseMatmulScorer(deq, device="cpu"), index, deq, q, 500)  # k beyond the collection


def test_deleted_documents_and_inputs(data):
    d, q = data
    live = np.ones(d.shape[0], bool)
    live[::2] = False
    scorer = SparseMatmulScorer(d, device="cpu", live=live)
    for docs, scores in scorer.search(SparseQueries.over_columns(q, 40), 50):
        assert np.all(docs % 2 == 1) and np.all(scores > 0)
    pairs = scorer.search(SparseQueries.over_columns([(q.getrow(0).indices, q.getrow(0).data)], 40), 5)
    assert np.array_equal(pairs[0][0], scorer.search(SparseQueries.over_columns(q[:1], 40), 5)[0][0])
    with pytest.raises(InputError):
        scorer.search(SparseQueries.over_columns(sp.csr_matrix((1, 41), dtype=np.float32), 41))
    with pytest.raises(InputError):
        scorer.search(SparseQueries.over_columns([(np.array([1]), np.array([-1.0]))], 40))
    with pytest.raises(InputError):
        SparseMatmulScorer(d.toarray())
    with pytest.raises(InputError):
        SparseMatmulScorer(d, live=live[:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu(data):
    d, q = data
    batch = SparseQueries.over_columns(q, q.shape[1])
    cpu = SparseMatmulScorer(d, device="cpu").search(batch, 10)
    gpu = SparseMatmulScorer(d, device="cuda").search(batch, 10)
    for (a, s), (b, t) in zip(cpu, gpu):
        assert np.allclose(s, t, rtol=1e-4)
        assert np.array_equal(a[:3], b[:3])
