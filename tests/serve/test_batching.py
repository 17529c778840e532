"""Micro-batching: concurrent calls merged into batched model calls, each answered with its own rows."""

import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

from rankstack import Queries
from rankstack.serve import batching, limits
from rankstack.serve.batching import MicroBatcher
from rankstack.serve.errors import RequestTimeout


class Model:
    """Rows [len(text), position]; slow enough for calls to overlap; 'bad' fails the whole call."""

    def __init__(self, kind="dense", delay=0.02):
        self.calls, self.kind, self.delay = [], kind, delay

    def __call__(self, items):
        self.calls.append(len(items))
        time.sleep(self.delay)
        if "bad" in items:
            raise ValueError("bad item")
        rows = np.array([[len(t), i] for i, t in enumerate(items)], dtype=np.float32)
        if self.kind == "csr":
            return sp.csr_matrix(rows)
        if self.kind == "list":
            return [row for row in rows]
        return rows


def run_threads(batcher, inputs):
    results, errors = {}, {}

    def work(i):
        try:
            results[i] = batcher(inputs[i])
        except Exception as e:  # noqa: BLE001
            errors[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


@pytest.mark.parametrize("kind", ["dense", "csr", "list"])
def test_concurrent_calls_share_batches_and_get_their_own_rows(kind):
    model = Model(kind)
    batcher = MicroBatcher(model, "m", window=0.01, max_items=50)
    inputs = [[f"text-{i}-" + "x" * j for j in range(1 + i % 4)] for i in range(40)]
    results, errors = run_threads(batcher, inputs)
    assert not errors
    assert sum(model.calls) == sum(len(x) for x in inputs)
    assert len(model.calls) < len(inputs) / 2  # merged: far fewer model calls than requests
    assert max(model.calls) <= 50  # the cap holds
    for i, texts in enumerate(inputs):
        rows = results[i].toarray() if kind == "csr" else np.asarray(results[i])
        assert rows[:, 0].tolist() == [len(t) for t in texts]  # each request got its own rows, in order


def test_a_large_request_is_split_at_the_cap_and_reassembled_in_order():
    model = Model()
    batcher = MicroBatcher(model, "m", window=0, max_items=7)
    texts = [str(i) * (i % 5 + 1) for i in range(30)]
    rows = batcher(texts)
    assert model.calls == [7, 7, 7, 7, 2]
    assert rows[:, 0].tolist() == [len(t) for t in texts]


def test_a_failing_request_fails_alone():
    model = Model()
    batcher = MicroBatcher(model, "m", window=0.02, max_items=100)
    inputs = [["a", "b"], ["bad"], ["c"], ["dd", "e"]]
    results, errors = run_threads(batcher, inputs)
    assert set(errors) == {1} and isinstance(errors[1], ValueError)
    assert [results[i][:, 0].tolist() for i in (0, 2, 3)] == [[1, 1], [1], [2, 1]]


def test_a_request_past_its_deadline_is_dropped_before_the_model_runs():
    model = Model(delay=0.3)
    batcher = MicroBatcher(model, "m", window=0, max_items=1)
    first = threading.Thread(target=batcher, args=(["slow"],))
    first.start()
    time.sleep(0.05)  # the model is busy with the first call

    def late():
        limits.set_deadline(0.1)
        with pytest.raises(RequestTimeout):
            batcher(["late"])

    thread = threading.Thread(target=late)
    thread.start()
    thread.join(5)
    first.join(5)
    time.sleep(0.4)
    assert model.calls == [1]  # "late" never reached the model


def test_batching_metrics_observer_sees_items_and_requests():
    seen = []
    batcher = MicroBatcher(Model(), "m", window=0.02, max_items=100, observe=lambda n, r: seen.append((n, r)))
    run_threads(batcher, [["a"], ["b", "c"], ["d"]])
    assert sum(n for n, _ in seen) == 4 and sum(r for _, r in seen) == 3


def test_install_routes_each_served_model_once_and_keeps_results(indexes, encoder_dir, collection_dir):
    from rankstack.pipeline.config import parse
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense

    bm25, dense = BM25(indexes / "bm25"), Dense(indexes / "dense")
    names = {"bm25": bm25, "dense": dense}
    rescored = parse("bm25 % 20 >> BiEncoder(index=dense)", names)
    hybrid = parse("(bm25 % 50 | dense % 50).rrf()", names)
    queries = Queries({"a": "vitamin d deficiency", "b": "cancer cells", "c": "gene expression in mice"})
    before = rescored(queries).to_dict()
    batchers = batching.install([rescored, hybrid, dense], 0.005, 64)  # one encoder, reached three ways
    assert sorted(b.name for b in batchers) == ["DenseEncoder.encode_documents", "DenseEncoder.encode_queries"]
    results, errors = run_threads(lambda q: (rescored(q).to_dict(), hybrid(q)), [queries.subset([q]) for q in queries])
    assert not errors
    for i, q in enumerate(queries):
        got, want = results[i][0][q], before[q]  # the same scores (up to padding's rounding), batched or not
        assert set(got) == set(want)
        assert np.allclose([got[d] for d in want], list(want.values()), atol=1e-4)
        assert len(results[i][1][q].docnos) > 0
    for b in batchers:
        b.close()
