"""rankstack on a local Ray cluster: builds against one process and tantivy, sharded search identical to one index,
throughput against shards and replicas, and the scale-out cost model's predictions next to measured figures.

    PYTHONPATH=src python bench/bench_ray.py [--docs N] [--neural-docs 2000] [--queries 1000] [--cpus 2]

1. Builds, in one run (bench/bench_build.py, each in a fresh process): BM25.build in one process, with 2 worker
   processes, the distributed build on a local Ray cluster of --cpus CPUs (one shard), tantivy with 2 threads.
2. Identity: BM25 over the first --docs documents of pypi-summaries (default all 778,196) in 2 and 4 shards, and
   SPLADE-tiny and all-MiniLM-L6-v2 over the first --neural-docs, against the one-node index (the neural one-node
   indexes are LearnedSparse.build / Dense.build over the same encoded parts), on --queries MS MARCO queries.
3. Throughput: batches of the queries (k=10 and k=1000) and single queries (k=10), through BM25 without Ray and
   ShardedBM25 with 1, 2, 4 shards and 1, 2 replicas. This machine has 2 cores for everything: more shards and
   replicas add fan-out work but no cores, so they cannot be faster here; the figures measure the overhead.
4. Cost model (see deploy/README.md): constants measured here, predictions for the sizes measured, and for 10M
   and 100M documents.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RANKSTACK_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
MODELS = DATA.parent / "models"
PYPI = DATA / "pypi-summaries"


def write_slice(out: Path, n: int | None) -> Path:
    with gzip.open(PYPI / "corpus.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(out, "wt", encoding="utf-8", compresslevel=1) as dst:
        dst.writelines(itertools.islice(src, n))
    return out


def read_queries(n: int):
    from rankstack import Queries

    with open(PYPI / "queries.msmarco-dev-small.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    return Queries({r["_id"]: r["text"] for r in rows})


def identical(a, b) -> dict:
    """How many queries have the same ids in the same order and the same scores bit for bit."""
    same = sum(a.ids(q) == b.ids(q) and a[q].scores.tobytes() == b[q].scores.tobytes() for q in a)
    return {"queries": len(a), "identical": int(same), "hits": int(sum(len(a[q].docnos) for q in a))}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def builds(args, work: Path) -> dict:
    out = work / "build.json"
    cmd = [sys.executable, str(HERE / "bench_build.py"), "--rounds", "1", "--workers", str(args.cpus),
           "--engines", "rankstack-1", "rankstack-N", "ray-N", "tantivy-N", "--workdir", str(work / "builds"),
           "--output", str(out)] + (["--docs", str(args.docs)] if args.docs else [])
    print(subprocess.run(cmd, capture_output=True, text=True).stdout, flush=True)
    return json.loads(out.read_text())["results"] if out.exists() else {}


def bm25_section(args, work: Path, queries) -> dict:
    from rankstack import BM25, distributed

    corpus = write_slice(work / "bm25.jsonl.gz", args.docs)
    start = time.perf_counter()
    single = BM25.build(corpus, work / "bm25-1", progress=False)
    report: dict = {"docs": single.index.num_docs, "one_node_build_s": round(time.perf_counter() - start, 1),
                    "one_node_mb": round(folder_mb(work / "bm25-1"), 1)}
    expected = single(queries)
    parts = work / "bm25-parts"
    for n in (1, 2, 4):
        start = time.perf_counter()
        distributed.build(corpus, work / f"bm25-{n}s", "bm25", shards=n, parts=parts, keep_parts=True,
                          progress=False)
        report[f"shards{n}_build_s"] = round(time.perf_counter() - start, 1)  # n > 1: parts already analysed
        stage = distributed.ShardedBM25(work / f"bm25-{n}s")
        report[f"shards{n}_identity"] = identical(stage(queries), expected)
        stage.close()
    report["throughput"] = throughput(args, work, single, queries)
    return report


def throughput(args, work: Path, single, queries) -> list[dict]:
    from rankstack import distributed

    rows = []
    texts = [queries[q] for q in queries][:args.single_queries]
    for shards, replicas in [(0, 0), (1, 1), (2, 1), (4, 1), (2, 2), (4, 2)]:
        if shards == 0:
            stage, name = single, "BM25 (no Ray)"
        else:
            stage = distributed.ShardedBM25(work / f"bm25-{shards}s", replicas=replicas)
            name = f"{shards} shards x {replicas} replicas"
        row = {"setup": name}
        for k in (10, 1000):
            cut = stage.at_depth(k)
            cut(queries)  # warm: kernels compiled, pages cached
            row[f"batch_qps_k{k}"] = round(len(queries) / timed(lambda: cut(queries), 2))
        stage.search(texts[0], k=10)
        latencies = []
        for t in texts:
            start = time.perf_counter()
            stage.search(t, k=10)
            latencies.append(time.perf_counter() - start)
        row["single_p50_ms"] = round(float(np.percentile(latencies, 50)) * 1e3, 2)
        row["single_p95_ms"] = round(float(np.percentile(latencies, 95)) * 1e3, 2)
        if shards:
            stage.close()
        rows.append(row)
        print(row, flush=True)
    return rows


def neural_section(args, work: Path, queries) -> dict:
    from rankstack import distributed
    from rankstack.encoders import DenseEncoder, SpladeEncoder
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.sparse import LearnedSparse

    corpus = write_slice(work / "neural.jsonl.gz", args.neural_docs)
    report = {}
    for kind, encoder in (("sparse", SpladeEncoder(MODELS / "splade-tiny-msmarco", progress=False)),
                          ("dense", DenseEncoder(MODELS / "sentence-transformers__all-MiniLM-L6-v2",
                                                 progress=False))):
        parts, part_size = work / f"{kind}-parts", args.neural_part_size
        r: dict = {"docs": args.neural_docs}
        start = time.perf_counter()
        for n in (2, 4):
            distributed.build(corpus, work / f"{kind}-{n}s", kind, encoder, shards=n, part_size=part_size,
                              parts=parts, keep_parts=True, progress=False)
            r[f"shards{n}_build_s"] = round(time.perf_counter() - start, 1)  # 4 shards: the parts are reused
            start = time.perf_counter()
        if kind == "sparse":
            single = LearnedSparse.build(corpus, work / f"{kind}-1", encoder, shards=parts, shard_size=part_size,
                                         progress=False)
        else:
            single = Dense.build(corpus, work / f"{kind}-1", encoder, shards=parts, shard_size=part_size)
        r["encode_docs_per_s"] = round(args.neural_docs / r["shards2_build_s"], 1)
        r["index_mb"] = round(folder_mb(work / f"{kind}-1"), 2)
        start = time.perf_counter()
        expected = single.at_depth(100)(queries)
        r["one_node_search_s"] = round(time.perf_counter() - start, 1)
        for n in (2, 4):
            stage = (distributed.ShardedSparse if kind == "sparse" else distributed.ShardedDense)(
                work / f"{kind}-{n}s", encoder, k=100)
            r[f"shards{n}_identity"] = identical(stage(queries), expected)
            stage.close()
        report[kind] = r
        print(kind, r, flush=True)
    return report


def cost_model(report: dict) -> dict:
    """Predictions from per-document constants measured here (see deploy/README.md for the model)."""
    bm25 = report.get("bm25", {})
    out: dict = {}
    if bm25:
        per_doc = bm25["one_node_mb"] * 2**20 / bm25["docs"]
        one = bm25["throughput"][0]
        per_query_per_doc = 1 / one["batch_qps_k10"] / bm25["docs"]  # s, batch k=10, 2 threads here
        fanout = {row["setup"]: row["single_p50_ms"] - one["single_p50_ms"] for row in bm25["throughput"][1:]}
        out["bm25"] = {"index_bytes_per_doc": round(per_doc, 1), "batch_s_per_query_per_doc": per_query_per_doc,
                       "fanout_overhead_ms_p50": {k: round(v, 2) for k, v in fanout.items()}}
        for n in (10_000_000, 100_000_000):
            shards = max(1, round(n / 25_000_000))
            out["bm25"][f"{n // 1_000_000}M"] = {
                "index_gb": round(per_doc * n / 2**30, 1), "shards": shards,
                "index_gb_per_shard": round(per_doc * n / shards / 2**30, 2),
                "memory_gb_per_shard": round((79 * 2**20 + 0.5 * per_doc * n / shards) / 2**30, 2),
                "batch_ms_per_query_per_shard": round(per_query_per_doc * n / shards * 1e3, 2)}
    for kind in ("sparse", "dense"):
        r = report.get("neural", {}).get(kind)
        if r:
            per_doc = r["index_mb"] * 2**20 / r["docs"]
            out[kind] = {"index_bytes_per_doc": round(per_doc, 1),
                         "encode_docs_per_s_here": r["encode_docs_per_s"]}
            for n in (10_000_000, 100_000_000):
                out[kind][f"{n // 1_000_000}M"] = {
                    "index_gb": round(per_doc * n / 2**30, 1),
                    "encode_hours_at_measured_rate": round(n / r["encode_docs_per_s"] / 3600, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="BM25 documents (default: all 778,196)")
    parser.add_argument("--neural-docs", type=int, default=2000)
    parser.add_argument("--neural-part-size", type=int, default=250)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single-queries", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--sections", nargs="+", default=["builds", "bm25", "neural"],
                        choices=["builds", "bm25", "neural"])
    parser.add_argument("--workdir", default="/tmp/bench-ray")
    parser.add_argument("--output", default=str(HERE / "out" / "ray.json"))
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report: dict = {"cores": os.cpu_count(), "load_start": os.getloadavg()[0]}
    if "builds" in args.sections:
        report["builds"] = builds(args, work)
    from rankstack import distributed

    distributed.init(num_cpus=args.cpus, object_store_mb=512)
    queries = read_queries(args.queries)
    if "bm25" in args.sections:
        report["bm25"] = bm25_section(args, work, queries)
        print(json.dumps(report["bm25"], indent=1), flush=True)
    if "neural" in args.sections:
        report["neural"] = neural_section(args, work, queries)
    report["cost_model"] = cost_model(report)
    report["load_end"] = os.getloadavg()[0]
    print(json.dumps(report["cost_model"], indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
