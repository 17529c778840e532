#!/usr/bin/env python
"""A worker that runs fast-plaid's PLAID search (lightonai/fast-plaid: a Rust core over libtorch; CPU here,
device="cpu") for bench/bench_late.py, on the same token vectors as rankstack's index.

It runs in its own virtualenv (bench/peers/setup_fast_plaid.sh): fast-plaid's wheels are built against one exact
torch release each (1.7.0.2110: torch 2.11.0; under the neural peers venv's torch 2.13 create segfaults).
bench_late.py writes --inputs (the .npz every peer reads: rankstack's centroids, bucket cut-offs and weights, nbits,
every document token vector, per-document token counts, the query vectors). The worker builds a fast-plaid index
of the same document vectors (documents numbered 0..n-1 in input order, as in rankstack's index) with the same
nbits and as many centroids as rankstack's index (--num-partitions; fast-plaid's own rule would pick
2^floor(log2(16 sqrt(tokens))), 4,096 for 1,024 SciFact documents). Its centroids, codes and buckets are NOT
rankstack's: fast-plaid trains its own k-means (fastkmeans, its defaults: 4 iterations, at most 256 tokens per
centroid, seed 42) and its own residual buckets (quantiles of held-out residuals), as it does for any user; the
comparison is at equal overlap@10 with exact MaxSim, not code for code. The queries are passed as they are
(32 tokens, [MASK]-padded, no zero rows, so fast-plaid keeps all 32).

Timed like colbert_plaid.py: every query searched in its own call (FastPlaid.search with one query, top_k=k,
n_processes=1: no joblib pool; a service answers one query at a time), wall and CPU time over all queries.
torch and rayon run with --threads threads. Protocol, one JSON object per line:

    worker -> parent: {"ready": true, "build_s": .., "fast_plaid": version, "torch": version, "num_partitions": ..}
    parent -> worker: {"run": [n_ivf_probe, n_full_scores], "k": 10}
    worker -> parent: {"wall_s": .., "cpu_s": .., "top": [[docno, ...], ...]}
    parent -> worker: {"quit": true}

fast-plaid decompresses and scores exactly the best n_full_scores / 4 of the n_full_scores documents kept by
centroid interaction (as colbert-ai does with ndocs; so its latest published Rust source, 1.4.6, reads), so
n_full_scores 1024 decompresses 256 documents, as many as rankstack's nprobe:256 does.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch


def build(inputs: dict, index: Path, num_partitions: int):
    """A fast-plaid index (device="cpu") of the document vectors, `num_partitions` k-means centroids."""
    from fast_plaid.search import fast_plaid as module

    if num_partitions:  # FastPlaid.create does not take the number of centroids; its k-means function does
        module.compute_kmeans = functools.partial(module.compute_kmeans, num_partitions=num_partitions)
    shutil.rmtree(index, ignore_errors=True)
    vectors = torch.from_numpy(inputs["vectors"].astype(np.float16))
    docs = list(torch.split(vectors, [int(n) for n in inputs["doclens"]]))
    searcher = module.FastPlaid(index=str(index), device="cpu")
    searcher.create(documents_embeddings=docs, nbits=int(inputs["nbits"]))
    return searcher


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-partitions", type=int,
                   help="k-means centroids (default: as many as the inputs' centroids; 0: fast-plaid's own rule)")
    args = p.parse_args()
    out = os.fdopen(os.dup(1), "w")  # keep the real stdout for the replies; anything printed goes to stderr
    os.dup2(2, 1)
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # read when fast-plaid's Rust core first starts its pool
    torch.set_num_threads(args.threads)
    with np.load(args.inputs) as z:
        inputs = {k: z[k] for k in z.files}
    num_partitions = len(inputs["centroids"]) if args.num_partitions is None else args.num_partitions
    t = time.perf_counter()
    searcher = build(inputs, args.work / "fast-plaid-index", num_partitions)
    queries = [torch.from_numpy(q.astype(np.float32)) for q in inputs["queries"]]

    def search(batch, n_ivf_probe: int, n_full_scores: int, k: int) -> list[list[int]]:
        return [[int(pid) for pid, _ in searcher.search(q[None], top_k=k, n_ivf_probe=n_ivf_probe,
                                                        n_full_scores=n_full_scores, n_processes=1,
                                                        show_progress=False)[0]]
                for q in batch]

    search(queries[:1], 8, 4096, 10)  # load the index, warm up
    centroids = np.load(args.work / "fast-plaid-index" / "centroids.npy")
    print(json.dumps({"ready": True, "build_s": time.perf_counter() - t, "fast_plaid": version("fast_plaid"),
                      "torch": torch.__version__, "num_partitions": len(centroids)}), file=out, flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        n_ivf_probe, n_full_scores = (int(x) for x in msg["run"])
        t, c = time.perf_counter(), time.process_time()
        top = search(queries, n_ivf_probe, n_full_scores, int(msg.get("k", 10)))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(json.dumps({"wall_s": wall, "cpu_s": cpu, "top": top}), file=out, flush=True)


if __name__ == "__main__":
    main()
