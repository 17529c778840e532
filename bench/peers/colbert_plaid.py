#!/usr/bin/env python
"""A worker that runs colbert-ai's PLAID search (its CPU path: the filter_pids and decompress_residuals C++
extensions, compiled by torch on first use) for bench/bench_late.py, on the same token vectors and the same
codec as rankstack's index.

It runs in the neural peers virtualenv (bench/peers/setup_neural.sh). bench_late.py writes --inputs (an .npz:
centroids, bucket cut-offs and weights, nbits, every document token vector, per-document token counts, the query
vectors); the worker compresses the vectors with colbert-ai's own ResidualCodec (same centroids and buckets, so
both indexes hold the same codes), writes a colbert-ai index (codec, one chunk, doclens, IVF) under --work and
loads it with colbert-ai's IndexScorer. Protocol, one JSON object per line:

    parent -> worker: {"run": [ncells, centroid_score_threshold, ndocs], "k": 10}
    worker -> parent: {"wall_s": .., "cpu_s": .., "top": [[pid, ...], ...]}
    parent -> worker: {"quit": true}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def build(inputs: dict, index: Path, threads: int):
    """A colbert-ai index of the vectors, compressed with the given centroids and buckets; its IndexScorer."""
    from colbert.indexing.codecs.residual import ResidualCodec
    from colbert.indexing.utils import optimize_ivf
    from colbert.infra.config import ColBERTConfig
    from colbert.search.index_storage import IndexScorer

    index.mkdir(parents=True, exist_ok=True)
    centroids = torch.from_numpy(inputs["centroids"]).float()
    dim, nbits = centroids.shape[1], int(inputs["nbits"])
    config = ColBERTConfig(dim=dim, nbits=nbits, index_path=str(index))
    codec = ResidualCodec(config, centroids, avg_residual=torch.tensor(0.0),
                          bucket_cutoffs=torch.from_numpy(inputs["cutoffs"]).float(),
                          bucket_weights=torch.from_numpy(inputs["weights"]).float())
    codec.save(str(index))
    vectors = torch.from_numpy(inputs["vectors"].astype(np.float32))
    doclens = [int(x) for x in inputs["doclens"]]
    embs = codec.compress(vectors)
    embs.save(str(index / "0"))
    (index / "doclens.0.json").write_text(json.dumps(doclens))
    (index / "0.metadata.json").write_text(json.dumps({"passage_offset": 0, "num_passages": len(doclens),
                                                       "num_embeddings": len(vectors), "embedding_offset": 0}))
    meta = {"config": config.export(), "num_chunks": 1, "num_partitions": len(centroids),
            "num_embeddings": len(vectors), "avg_doclen": len(vectors) / len(doclens)}
    (index / "metadata.json").write_text(json.dumps(meta, default=str))
    order = embs.codes.long().sort()
    optimize_ivf(order.indices, torch.bincount(order.values, minlength=len(centroids)), str(index), verbose=0)
    torch.set_num_threads(threads)
    from colbert.modeling.colbert import ColBERT
    ColBERT.try_load_torch_extensions(use_gpu=False)  # segmented_maxsim: loaded only when a ColBERT model is built
    return IndexScorer(str(index), use_gpu=False), ColBERTConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    out = os.fdopen(os.dup(1), "w")  # colbert-ai prints progress to stdout: keep the real one for the replies
    os.dup2(2, 1)
    torch.set_num_threads(args.threads)
    with np.load(args.inputs) as z:
        inputs = {k: z[k] for k in z.files}
    t = time.perf_counter()
    scorer, Config = build(inputs, args.work / "colbert-index", args.threads)
    queries = [torch.from_numpy(q.astype(np.float32))[None] for q in inputs["queries"]]
    scorer.rank(Config(ncells=1, centroid_score_threshold=0.5, ndocs=256), queries[0])  # compile, warm up
    import colbert
    print(json.dumps({"ready": True, "build_s": time.perf_counter() - t,
                      "colbert": getattr(colbert, "__version__", "0.2.22")}), file=out, flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        ncells, threshold, ndocs = msg["run"]
        config = Config(ncells=int(ncells), centroid_score_threshold=float(threshold), ndocs=int(ndocs))
        k = int(msg.get("k", 10))
        t, c = time.perf_counter(), time.process_time()
        top = [scorer.rank(config, q)[0][:k] for q in queries]
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(json.dumps({"wall_s": wall, "cpu_s": cpu, "top": top}), file=out, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("COLBERT_LOAD_TORCH_EXTENSION_VERBOSE", "False")
    main()
