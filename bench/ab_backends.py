"""Search speed of the dense (FAISS), PLAID and Seismic indexes in two rankstack source trees, in one run: the
A/B beside bench/ab_search.py (BM25) for a change to the index layer.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/ab_backends.py --old /tmp/before/src --new src [--rounds 5]

Each tree builds its own indexes from the same seeded random data (its own formats), then the trees take turns,
round after round, each timing the same queries in a worker process of its own (one thread), as one batch and
one query per call; the best and the median of the rounds are reported per tree, with the new/old ratio. Either
tree may have the old per-backend calls (search_arrays / search_batch) or the one search shape
(`index.search(queries, k, params)`).

Data: dense Flat, 100,000 x 128 float32 (inner product), 1,000 queries, k=100; PLAID, 3,000 documents of 32
token vectors of 64 dimensions (2 bits, 256 centroids), 200 queries of 16 tokens, k=10, nprobe 4; Seismic,
100,000 Zipfian sparse documents over 30,000 columns (~120 non-zeros), 1,000 queries of ~20, k=10.
"""

from __future__ import annotations

import argparse

import abtest

WORKER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import scipy.sparse as sp
from rankstack.index.dense import DenseIndex, DenseIndexWriter
from rankstack.index.plaid import PlaidIndex
from rankstack.index.seismic import SeismicIndex

work = Path(sys.argv[1])
rng = np.random.default_rng(0)

def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

# dense
dense_q = unit(rng.standard_normal((1000, 128)))
if not (work / "dense" / "manifest.json").exists():
    with DenseIndexWriter(work / "dense", factory="Flat", dim=128, metric="ip", encoder={}) as w:
        for start in range(0, 100_000, 20_000):
            w.add([f"d{i}" for i in range(start, start + 20_000)], unit(rng.standard_normal((20_000, 128))))
dense = DenseIndex(work / "dense", gpu=False)

# PLAID
docs_rng = np.random.default_rng(1)
plaid_docs = [unit(docs_rng.standard_normal((32, 64))) for _ in range(3000)]
plaid_q = [unit(docs_rng.standard_normal((16, 64))) for _ in range(200)]
if not (work / "plaid" / "manifest.json").exists():
    index = PlaidIndex.create(work / "plaid", {"model": "random"}, plaid_docs[:1000], nbits=2, num_centroids=256)
    index.add([f"p{i}" for i in range(len(plaid_docs))], plaid_docs)
plaid = PlaidIndex(work / "plaid")

# Seismic
sp_rng = np.random.default_rng(2)
def zipf_rows(n, nnz):
    cols = np.minimum(sp_rng.zipf(1.3, size=(n, nnz)) - 1, 29_999)
    rows = np.repeat(np.arange(n), nnz)
    m = sp.csr_matrix((sp_rng.random(n * nnz).astype(np.float32) + 0.01, (rows, cols.ravel())), shape=(n, 30_000))
    m.sum_duplicates()
    return m
seismic_q = zipf_rows(1000, 20)
if not (work / "seismic" / "manifest.json").exists():
    SeismicIndex.build(work / "seismic", zipf_rows(100_000, 120))
seismic = SeismicIndex(work / "seismic")

try:
    from rankstack.index.search import DenseParams, PlaidParams, SeismicParams, SparseQueries
    one_thread = SeismicParams(threads=1)
    sq = SparseQueries.over_columns(seismic_q, 30_000)
    sq_rows = [SparseQueries.over_columns(seismic_q[i], 30_000) for i in range(seismic_q.shape[0])]
    work_fns = {
        "dense_batch": lambda: dense.search(dense_q, 100),
        "dense_one": lambda: [dense.search(dense_q[i:i + 1], 100) for i in range(len(dense_q))],
        "plaid_batch": lambda: plaid.search(plaid_q, 10, PlaidParams(nprobe=4)),
        "seismic_batch": lambda: seismic.search(sq, 10, one_thread),
        "seismic_one": lambda: [seismic.search(q, 10, one_thread) for q in sq_rows],
    }
except ImportError:  # the trees before the one search shape
    rows = [seismic_q[i] for i in range(seismic_q.shape[0])]
    work_fns = {
        "dense_batch": lambda: dense.search_arrays(dense_q, 100),
        "dense_one": lambda: [dense.search_arrays(dense_q[i:i + 1], 100) for i in range(len(dense_q))],
        "plaid_batch": lambda: plaid.search_batch(plaid_q, 10, nprobe=4),
        "seismic_batch": lambda: seismic.search_batch(seismic_q, 10, threads=1),
        "seismic_one": lambda: [seismic.search_batch(r, 10, threads=1) for r in rows],
    }
sizes = {"dense_batch": 1000, "dense_one": 1000, "plaid_batch": 200, "seismic_batch": 1000, "seismic_one": 1000}
for fn in work_fns.values():  # compile and warm up
    fn()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    out = {}
    for name, fn in work_fns.items():
        t = time.perf_counter()
        fn()
        out[name] = sizes[name] / (time.perf_counter() - t)
    print(json.dumps(out), flush=True)
"""

KEYS = ("dense_batch", "dense_one", "plaid_batch", "seismic_batch", "seismic_one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="src folder of the first tree")
    parser.add_argument("--new", required=True, help="src folder of the second tree")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", default="/tmp/rankstack-ab-backends", help="where each tree builds its indexes")
    args = parser.parse_args()
    _, results = abtest.run(WORKER, {"old": args.old, "new": args.new}, [f"{args.work}/{{side}}"], args.rounds)
    print(f"random data (see the docstring), one thread, {args.rounds} rounds taking turns (queries/s: best / median)")
    print(abtest.table(results, KEYS))


if __name__ == "__main__":
    main()
