"""rankstack on a local Ray cluster: builds against one process and tantivy, sharded search identical to one index,
throughput against shards and replicas, and the scale-out cost model's predictions next to measured figures.

    PYTHONPATH=src python bench/bench_ray.py [--docs 200000] [--neural-docs 2000] [--queries 1000] [--cpus 2]

1. Builds, in one run (bench/bench_build.py, each in a fresh process): BM25.build in one process, with 2 worker
   processes, the distributed build on a local Ray cluster of --cpus CPUs (one shard), tantivy with 2 threads.
2. Identity: BM25 over the first --docs documents of pypi-summaries in 1, 2 and 4 shards, and SPLADE-tiny and
   all-MiniLM-L6-v2 over the first --neural-docs, against the one-node index (the neural one-node indexes are
   LearnedSparse.build / Dense.build over the same encoded parts: encoding is the build's job, searching the
   shards the part checked here), on --queries MS MARCO queries (k=1000 for BM25, k=100 for the encoders).
3. Throughput: batches of the queries (k=10 and k=1000) and single queries (k=10), through BM25 without Ray and
   ShardedBM25 with 1, 2, 4 shards and 1, 2 replicas. This machine has 2 cores for everything: more shards and
   replicas add fan-out work but no cores, so they cannot be faster here; the figures measure the overhead.
4. Cost model (deploy/README.md): its constants measured on two smaller slices (--docs / 4 and --docs / 2; the
   encoders: a single process encoding --calibrate-texts documents), its predictions for --docs documents next to
   what sections 2 and 3 measured there, and its predictions for 10M and 100M documents.
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
    """How many queries have the same ids in the same order and the same scores bit for bit; where they do not,
    the largest score difference at the same rank, and how many have the same top 10 and the same set of ids."""
    same = sum(a.ids(q) == b.ids(q) and a[q].scores.tobytes() == b[q].scores.tobytes() for q in a)
    diff = max((float(np.abs(a[q].scores - b[q].scores).max()) for q in a if len(a[q].scores) == len(b[q].scores)
                and len(a[q].scores)), default=0.0)
    return {"queries": len(a), "identical": int(same), "hits": int(sum(len(a[q].docnos) for q in a)),
            "max_abs_score_diff": diff, "same_top10": int(sum(a.ids(q)[:10] == b.ids(q)[:10] for q in a)),
            "same_id_sets": int(sum(set(a.ids(q)) == set(b.ids(q)) for q in a))}


def dense_self_check(single, queries, k: int = 100) -> dict:
    """The one-node Dense index against itself: its queries searched in one batch (FAISS scores them with a
    blocked matrix product) and in batches of 10 (below FAISS's BLAS threshold of 20: one dot product per pair);
    (agreement, the run in batches of 10)."""
    from rankstack.index.dense import to_run

    qids, vectors = single.encode_queries(queries)
    rows, scores = single.search_vectors(vectors, k)
    parts = [single.search_vectors(vectors[i:i + 10], k) for i in range(0, len(qids), 10)]
    chunked = to_run(qids, np.concatenate([r for r, _ in parts]), np.concatenate([s for _, s in parts]),
                     single.index.doc_ids)
    return identical(chunked, to_run(qids, rows, scores, single.index.doc_ids)), chunked


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
    parts, part_size = work / "bm25-parts", -(-single.index.num_docs // 8)  # 8 parts, shared by the 3 builds
    for n in (1, 2, 4):
        start = time.perf_counter()
        distributed.build(corpus, work / f"bm25-{n}s", "bm25", shards=n, parts=parts, keep_parts=True,
                          part_size=part_size, progress=False)
        report[f"shards{n}_build_s"] = round(time.perf_counter() - start, 1)  # n > 1: parts already analysed
        sharded = distributed.ShardedIndex(work / f"bm25-{n}s")
        report[f"shards{n}_mb_per_shard"] = round(sum(folder_mb(x.path) for x in sharded.shards) / n, 1)
        stage = distributed.ShardedBM25(work / f"bm25-{n}s")
        report[f"shards{n}_identity"] = identical(stage(queries), expected)
        stage.close()
    report["throughput"] = throughput(args, work, single, queries)
    return report


def throughput(args, work: Path, single, queries) -> list[dict]:
    from rankstack import distributed

    rows = []
    for shards, replicas in [(0, 0), (1, 1), (2, 1), (4, 1), (2, 2), (4, 2)]:
        if shards == 0:
            stage, name = single, "BM25 (no Ray)"
        else:
            stage = distributed.ShardedBM25(work / f"bm25-{shards}s", replicas=replicas)
            name = f"{shards} shards x {replicas} replicas"
        t = search_times(stage, queries, args.single_queries)
        row = {"setup": name, "batch_qps_k10": round(len(queries) / t["batch_s_k10"]),
               "batch_qps_k1000": round(len(queries) / t["batch_s_k1000"]),
               "single_p50_ms": round(t["single_p50_s"] * 1e3, 2)}
        if shards:
            row["shard_rss_mb"] = round(max(rss_mb(s["pid"]) or 0 for r in stage.pool.status() for s in r), 1)
            stage.close()
        rows.append(row)
        print(row, flush=True)
    return rows


def neural_section(args, work: Path, queries) -> dict:
    from rankstack import distributed
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.sparse import LearnedSparse

    corpus = write_slice(work / "neural.jsonl.gz", args.neural_docs)
    report = {}
    for kind, encoder in encoders().items():
        parts, part_size = work / f"{kind}-parts", args.neural_part_size
        r: dict = {"docs": args.neural_docs}
        start = time.perf_counter()
        for n in (2, 4):
            if args.reuse and (work / f"{kind}-{n}s").exists():
                continue
            distributed.build(corpus, work / f"{kind}-{n}s", kind, encoder, shards=n, part_size=part_size,
                              parts=parts, keep_parts=True, progress=False)
            r[f"shards{n}_build_s"] = round(time.perf_counter() - start, 1)  # 4 shards: the parts are reused
            start = time.perf_counter()
        if args.reuse and (work / f"{kind}-1").exists():
            single = (LearnedSparse if kind == "sparse" else Dense)(work / f"{kind}-1", encoder)
        elif kind == "sparse":
            single = LearnedSparse.build(corpus, work / f"{kind}-1", encoder, shards=parts, shard_size=part_size,
                                         progress=False)
        else:
            single = Dense.build(corpus, work / f"{kind}-1", encoder, shards=parts, shard_size=part_size)
        if "shards2_build_s" in r:
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
        if kind == "dense":  # the shards searched in batches of 10 too (queries encoded once, in one batch)
            import rankstack.distributed.search as sharded_search

            r["one_node_batch_vs_batches_of_10"], chunked = dense_self_check(single, queries)
            chunk, sharded_search.QUERY_CHUNK = sharded_search.QUERY_CHUNK, 10
            try:
                for n in (2, 4):
                    stage = distributed.ShardedDense(work / f"{kind}-{n}s", encoder, k=100)
                    r[f"shards{n}_identity_batches_of_10"] = identical(stage(queries), chunked)
                    stage.close()
            finally:
                sharded_search.QUERY_CHUNK = chunk
        report[kind] = r
        print(kind, r, flush=True)
    return report


def calibrate_bm25(args, work: Path, queries) -> dict:
    """The BM25 constants of the cost model (deploy/README.md), from one-node indexes of --docs/4 and --docs/2
    documents and a 1-shard Ray index of the larger: index bytes and build seconds per document, search time
    against index size (a line through the two), the cost of one round trip to a shard, of each hit a shard sends
    back (serialised, merged) and of a batch besides its hits."""
    from rankstack import BM25, distributed

    rows = []
    for n in (args.docs // 4, args.docs // 2):
        corpus = write_slice(work / f"calibrate-{n}.jsonl.gz", n)
        start = time.perf_counter()
        single = BM25.build(corpus, work / f"calibrate-{n}", progress=False)
        row = {"docs": single.index.num_docs, "build_s": time.perf_counter() - start,
               "mb": folder_mb(work / f"calibrate-{n}")}
        row.update(search_times(single, queries, args.single_queries))
        rows.append(row)
    distributed.build(corpus, work / "calibrate-ray", "bm25", shards=1, progress=False)
    stage = distributed.ShardedBM25(work / "calibrate-ray")
    ray_row = search_times(stage, queries, args.single_queries)
    rss = max(rss_mb(x["pid"]) or 0 for r in stage.pool.status() for x in r)
    stage.close()
    small, large = rows
    slope = {key: (large[key] - small[key]) / (large["docs"] - small["docs"]) for key in
             ("batch_s_k10", "batch_s_k1000", "single_p50_s")}
    q = len(queries)
    extra = {k: ray_row[f"batch_s_k{k}"] - large[f"batch_s_k{k}"] for k in (10, 1000)}  # Ray's part of a batch
    hit_s = max(0.0, (extra[1000] - extra[10]) / (q * (1000 - 10)))
    return {"slices": rows, "ray_1_shard": ray_row, "bytes_per_doc": large["mb"] * 2**20 / large["docs"],
            "build_s_per_doc": large["build_s"] / large["docs"],
            "per_doc": slope, "fixed": {key: large[key] - slope[key] * large["docs"] for key in slope},
            "shard_base_mb": rss - large["mb"],  # a shard server's memory besides its index (at most)
            "rpc_s": (ray_row["single_p50_s"] - large["single_p50_s"]) / 2,  # BM25: 2 rounds (statistics, search)
            "hit_s": hit_s, "batch_overhead_s": max(0.0, extra[10] - q * 10 * hit_s)}


def search_times(stage, queries, single: int) -> dict:
    """Seconds for the batch of queries at k=10 and k=1000 (best of 2, after a warm-up), and the median seconds
    of one query at k=10."""
    out = {}
    for k in (10, 1000):
        cut = stage.at_depth(k)
        cut(queries)
        out[f"batch_s_k{k}"] = timed(lambda: cut(queries), 2)
    texts = [queries[q] for q in queries][:single]
    stage.search(texts[0], k=10)
    latencies = []
    for t in texts:
        start = time.perf_counter()
        stage.search(t, k=10)
        latencies.append(time.perf_counter() - start)
    out["single_p50_s"] = float(np.percentile(latencies, 50))
    return out


def predict_bm25(c: dict, docs: int, shards: int, cores: int, queries: int) -> dict:
    """The cost model for BM25 (deploy/README.md): `docs` documents in `shards` shards (0: one index, no Ray) on
    `cores` cores, the driver's calls to the shards dispatched one after another."""
    per = docs / max(shards, 1)

    def t(key: str, n: float) -> float:
        return max(0.0, c["fixed"][key] + c["per_doc"][key] * n)

    out = {"index_mb": c["bytes_per_doc"] * docs / 2**20, "index_mb_per_shard": c["bytes_per_doc"] * per / 2**20,
           "build_s_one_process": c["build_s_per_doc"] * docs}
    if not shards:
        out["single_p50_ms"] = 1e3 * t("single_p50_s", docs)
        out.update({f"batch_qps_k{k}": queries / t(f"batch_s_k{k}", docs) for k in (10, 1000)})
        return out
    # one query: the shards search at once where there are cores for them; 2 rounds (statistics, search) of one
    # call per shard
    out["single_p50_ms"] = 1e3 * (t("single_p50_s", per) * -(-shards // cores) + 2 * shards * c["rpc_s"])
    for k in (10, 1000):  # a batch: every shard's search, on one thread each, over the cores; each shard's hits
        search = shards * cores * t(f"batch_s_k{k}", per) / min(shards, cores)  # (one node: `cores` threads)
        out[f"batch_qps_k{k}"] = queries / (search + shards * (c["batch_overhead_s"] + queries * k * c["hit_s"]))
    return out


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (Linux), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def calibrate_encoders(args, work: Path) -> dict:
    """Documents per second of each encoder in one process (all cores), on --calibrate-texts documents."""
    from rankstack.data.corpus import Corpus

    texts = [d.contents for d in itertools.islice(Corpus(write_slice(work / "calibrate-neural.jsonl.gz",
                                                                     args.calibrate_texts)), args.calibrate_texts)]
    out = {}
    for kind, encoder in encoders().items():
        encoder.encode_documents(texts[:16])  # warm
        out[kind] = {"texts": len(texts), "docs_per_s": len(texts) / timed(lambda: encoder.encode_documents(texts))}
    return out


def cost_model(report: dict, cores: int, queries: int) -> dict:
    """Predictions of the cost model next to the figures measured at the same sizes, and for 10M and 100M."""
    out: dict = {}
    bm25, c = report.get("bm25"), report.get("calibration", {}).get("bm25")
    if bm25 and c:
        docs = bm25["docs"]
        rows = []
        measured = {row["setup"]: row for row in bm25["throughput"]}
        for shards, replicas in [(0, 0), (1, 1), (2, 1), (4, 1)]:
            name = "BM25 (no Ray)" if not shards else f"{shards} shards x {replicas} replicas"
            p, m = predict_bm25(c, docs, shards, cores, queries), measured.get(name, {})
            row = {"setup": name}
            for key in ("batch_qps_k10", "batch_qps_k1000", "single_p50_ms"):
                row[key] = {"predicted": round(p[key], 2), "measured": m.get(key)}
            if shards:
                row["index_mb_per_shard"] = {"predicted": round(p["index_mb_per_shard"], 1),
                                             "measured": bm25.get(f"shards{shards}_mb_per_shard")}
                row["shard_rss_mb"] = {"predicted_at_most": round(c["shard_base_mb"] + p["index_mb_per_shard"], 1),
                                       "measured": m.get("shard_rss_mb")}
            else:
                row["index_mb"] = {"predicted": round(p["index_mb"], 1), "measured": bm25["one_node_mb"]}
                row["build_s"] = {"predicted": round(p["build_s_one_process"], 1), "measured": bm25["one_node_build_s"]}
            rows.append(row)
        out["bm25_checked"] = rows
        for n in (10_000_000, 100_000_000):
            shards = max(1, round(n / 25_000_000))
            p = predict_bm25(c, n, shards, cores=shards * 2, queries=queries)  # 2 cores per shard
            out[f"bm25_{n // 1_000_000}M"] = {
                "shards": shards, "index_gb": round(p["index_mb"] / 1024, 1),
                "index_gb_per_shard": round(p["index_mb_per_shard"] / 1024, 2),
                "memory_gb_per_shard_at_most": round((c["shard_base_mb"] + p["index_mb_per_shard"]) / 1024, 2),
                "single_p50_ms": round(p["single_p50_ms"], 1), "build_hours_one_process": round(
                    p["build_s_one_process"] / 3600, 2)}
    for kind in ("sparse", "dense"):
        r = report.get("neural", {}).get(kind)
        rate = report.get("calibration", {}).get("encoders", {}).get(kind)
        if not r or not rate:
            continue
        docs = r["docs"]
        checked = {"encode_s": {"predicted": round(docs / rate["docs_per_s"], 1),
                                "measured": r.get("shards2_build_s")}}
        if kind == "dense":  # Flat: 4 bytes per dimension per document, plus ids
            checked["vectors_mb"] = {"predicted": round(docs * 384 * 4 / 2**20, 2), "measured": r["index_mb"]}
        out[kind] = {"checked": checked, "calibration_docs_per_s": round(rate["docs_per_s"], 1),
                     "index_bytes_per_doc": round(r["index_mb"] * 2**20 / docs, 1)}
        for n in (10_000_000, 100_000_000):
            out[kind][f"{n // 1_000_000}M"] = {
                "index_gb": round(r["index_mb"] / docs * n / 1024, 1),
                "encode_hours_on_these_2_cores": round(n / rate["docs_per_s"] / 3600, 1)}
    return out


def encoders() -> dict:
    from rankstack.encoders import DenseEncoder, SpladeEncoder

    return {"sparse": SpladeEncoder(MODELS / "splade-tiny-msmarco", progress=False),
            "dense": DenseEncoder(MODELS / "sentence-transformers__all-MiniLM-L6-v2", progress=False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000, help="BM25 documents (the first N of pypi-summaries)")
    parser.add_argument("--neural-docs", type=int, default=2000)
    parser.add_argument("--neural-part-size", type=int, default=250)
    parser.add_argument("--calibrate-texts", type=int, default=200)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single-queries", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--sections", nargs="+", default=["builds", "bm25", "neural"],
                        choices=["builds", "bm25", "neural"])
    parser.add_argument("--workdir", default="/tmp/bench-ray")
    parser.add_argument("--reuse", action="store_true", help="search the neural indexes an earlier run left in "
                        "--workdir instead of building them (no build figures)")
    parser.add_argument("--output", default=str(HERE / "out" / "ray.json"))
    args = parser.parse_args()
    work = Path(args.workdir)
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": vars(args), "cores": os.cpu_count(), "load_start": os.getloadavg()}
    if "builds" in args.sections:
        report["builds"] = builds(args, work)
    from rankstack import distributed

    distributed.init(num_cpus=args.cpus, object_store_mb=512)
    queries = read_queries(args.queries)
    report["calibration"] = {}
    if "bm25" in args.sections:
        report["calibration"]["bm25"] = calibrate_bm25(args, work, queries)
        report["bm25"] = bm25_section(args, work, queries)
        print(json.dumps(report["bm25"], indent=1), flush=True)
    if "neural" in args.sections:
        report["calibration"]["encoders"] = calibrate_encoders(args, work)
        report["neural"] = neural_section(args, work, queries)
    report["cost_model"] = cost_model(report, args.cpus, len(queries))
    report["load_end"] = os.getloadavg()
    print(json.dumps(report["cost_model"], indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
