"""BM25 build time: rankstack in one process, rankstack with N worker processes (`BM25.build(..., workers=N)`),
the same plus a merge to one segment, the distributed build on a local Ray cluster, and tantivy, in one run.

Method (as bench/peers/bm25_peers.py): the corpus is read first (not timed) and indexed as one field, title +
" " + text, without stored documents (tantivy stores none either). Each build runs in a fresh process; the engines
alternate for `--rounds` rounds and the best wall time of each is reported with its CPU time (user + system of the
process and of its worker processes; tantivy's threads are in the process). Ray's figures add its worker
processes' CPU (Ray Data actors and shard writers), measured with its own start-up excluded.

    PYTHONPATH=src python bench/bench_build.py [--docs N] [--workers 2] [--rounds 3] [--engines ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RANKSTACK_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
CORPUS = DATA / "pypi-summaries" / "corpus.jsonl.gz"
ENGINES = ["rankstack-1", "rankstack-N", "rankstack-N+merge", "ray-N", "tantivy-1", "tantivy-N"]


def read_corpus(path: Path, limit: int | None) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ids.append(str(d["_id"]))
            texts.append(f'{d.get("title") or ""} {d.get("text") or ""}'.strip())
            if limit and len(ids) >= limit:
                break
    return ids, texts


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def descendants_cpu() -> float:
    """CPU seconds of this process's live descendants, with what each has reaped of its own (Ray's raylet reaps its
    workers)."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def one(engine: str, args: argparse.Namespace) -> dict:
    """Build once with `engine` in this process; its figures."""
    ids, texts = read_corpus(Path(args.corpus), args.docs)
    out = Path(args.workdir) / engine
    shutil.rmtree(out, ignore_errors=True)
    extra = {}
    if engine.startswith("tantivy"):
        import tantivy

        threads = 1 if engine == "tantivy-1" else args.workers
        start, cpu = time.perf_counter(), cpu_seconds()
        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("idx", fast=True)
        sb.add_text_field("contents", tokenizer_name="en_stem", index_option="freq")
        out.mkdir(parents=True)
        index = tantivy.Index(sb.build(), path=str(out))
        writer = index.writer(heap_size=256_000_000 * threads, num_threads=threads)
        for i, t in enumerate(texts):
            writer.add_document(tantivy.Document(idx=i, contents=t))
        writer.commit()
        writer.wait_merging_threads()
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        extra["segments"] = len(index.searchable_segment_ids()) if hasattr(index, "searchable_segment_ids") else None
    elif engine.startswith("ray"):
        from rankstack import distributed

        corpus = out.with_suffix(".jsonl")  # the distributed build reads a corpus file: the same texts, one field
        with open(corpus, "w", encoding="utf-8") as f:
            for i, t in zip(ids, texts):
                f.write(json.dumps({"_id": i, "text": t}) + "\n")
        distributed.init(num_cpus=args.workers, object_store_mb=512)
        before = descendants_cpu()
        start, cpu = time.perf_counter(), cpu_seconds()
        distributed.build(corpus, out, "bm25", shards=1, part_size=args.part_docs, workers=args.workers,
                          index_options={"store": False}, progress=False)
        wall = time.perf_counter() - start
        cpu = cpu_seconds() - cpu + descendants_cpu() - before
        extra["note"] = "driver and Ray's processes (raylet, workers, actors), Ray's start-up excluded"
    else:
        from rankstack import BM25, Document

        workers = None if engine == "rankstack-1" else args.workers
        start, cpu = time.perf_counter(), cpu_seconds()
        bm25 = BM25.build((Document(i, t) for i, t in zip(ids, texts)), out, store=False, progress=False,
                          workers=workers)
        built = time.perf_counter() - start
        if engine.endswith("merge"):
            from rankstack.index.inverted import IndexWriter
            with IndexWriter(out) as w:
                w.force_merge(1)
            extra["merge_seconds"] = round(time.perf_counter() - start - built, 3)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        extra["segments"] = len(BM25(out).index.segments)
    return {"engine": engine, "docs": len(ids), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "docs_per_s": round(len(ids) / wall), "cpu_us_per_doc": round(cpu / len(ids) * 1e6, 2),
            "index_mb": round(folder_bytes(out) / 2**20, 1), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--docs", type=int, default=None, help="the first N documents (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--workdir", default="/tmp/bench-build")
    parser.add_argument("--output", default=str(HERE / "out" / "build.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args)))
        return
    forward = [a for a in sys.argv[1:] if a not in ("--engines",) and a not in ENGINES]
    best: dict[str, dict] = {}
    for r in range(args.rounds):
        for engine in args.engines:
            print(f"round {r + 1}: {engine} ...", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, __file__, *forward, "--one", engine], capture_output=True,
                                  text=True)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if engine not in best or result["wall_s"] < best[engine]["wall_s"]:
                best[engine] = result
    load = os.getloadavg()
    lines = [f"pypi-summaries, {next(iter(best.values()))['docs']:,} documents, best of {args.rounds} rounds, "
             f"{args.workers} workers; load average at the end {load[0]:.1f} on {os.cpu_count()} cores", "",
             "| engine | wall s | docs/s | CPU s | CPU µs/doc | segments | index MB | wall vs rankstack-1 | "
             "CPU vs rankstack-1 | wall vs tantivy-N |", "|---|---|---|---|---|---|---|---|---|---|"]
    ref, tan = best.get("rankstack-1"), best.get("tantivy-N")
    for engine in args.engines:
        if engine not in best:
            lines.append(f"| {engine} | failed |")
            continue
        r = best[engine]
        ratios = [f"{ref['wall_s'] / r['wall_s']:.2f}x" if ref else "–", f"{r['cpu_s'] / ref['cpu_s']:.2f}x" if ref
                  else "–", f"{tan['wall_s'] / r['wall_s']:.2f}x" if tan else "–"]  # (a peer left out: no ratio)
        lines.append(f"| {engine} | {r['wall_s']:.2f} | {r['docs_per_s']:,} | {r['cpu_s']:.2f} | "
                     f"{r['cpu_us_per_doc']:.2f} | {r.get('segments') or '–'} | {r['index_mb']} | "
                     + " | ".join(ratios) + " |")
    print("\n".join(lines))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"results": best, "load": load}, indent=1))


if __name__ == "__main__":
    main()
