"""Where BM25 search's resident memory goes, and how search runs when memory is scarcer than the index is large.

Opens a BM25 index (default: the pypi-summaries index bench_bm25.py leaves in /tmp/bench-work), then prints the
process's resident memory, split into anonymous and file-backed, after each step: importing, opening the index,
the first query (which loads the compiled kernels), and 2,000 MS MARCO queries at k=10 and again at k=1000 with
their ids fetched, with the queries/s of each. File-backed growth after the first query is index pages the
queries touched (page cache: shared with other processes and reclaimable).

With --limit-mb, the whole run (imports included) happens inside a Linux memory cgroup (v1, needs root) that
caps its resident memory, page cache included, at that many MB; the index's pages are first dropped from the page
cache so that no page comes in uncharged. Comparing its queries/s with an unlimited run shows how much memory
search needs for a given index size (e.g. bench_scaling.py --sizes 5000000 --keep leaves a 5M-document index).

    PYTHONPATH=src python bench/search_memory.py [--index /tmp/bench-work/rankstack-pypi-summaries]
    PYTHONPATH=src python bench/search_memory.py --index /tmp/bench-scaling/synthetic-5000000 --limit-mb 96
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-summaries" / "queries.msmarco-dev-small.jsonl"
CGROUP = Path("/sys/fs/cgroup/memory")


def resident() -> dict[str, int]:
    """MB resident: total, anonymous, file-backed (from /proc/self/status)."""
    fields = {"VmRSS": "total", "RssAnon": "anonymous", "RssFile": "file"}
    with open("/proc/self/status", encoding="utf-8") as f:
        return {fields[k]: int(v.split()[0]) // 1024 for k, v in (line.split(":", 1) for line in f) if k in fields}


def limit_memory(index: Path, mb: int) -> Path:
    """Move this process into a new memory cgroup capped at `mb` MB, after evicting the index from the page cache."""
    for f in index.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    group = CGROUP / f"rankstack-search-memory-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(mb * 2**20))
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        raise SystemExit(f"--limit-mb needs a writable cgroup v1 memory hierarchy at {CGROUP} (root): {e}")
    return group


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="/tmp/bench-work/rankstack-pypi-summaries")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--limit-mb", type=int, help="run inside a memory cgroup capped at this many MB")
    args = ap.parse_args()
    group = limit_memory(Path(args.index), args.limit_mb) if args.limit_mb else None
    print("start", resident())
    from rankstack import BM25
    print("imported", resident())
    bm25 = BM25(args.index, progress=False)
    size = sum(p.stat().st_size for p in Path(args.index).rglob("*") if p.is_file()) / 2**20
    print(f"opened ({size:.1f} MB on disk)", resident())
    with open(QUERIES, encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:args.queries]
    bm25.index.search(bm25.query_terms(queries[0]), 10)
    print("first query (kernels loaded)", resident())
    for k in (10, 1000):
        start = time.perf_counter()
        for q in queries:
            docnos, _ = bm25.index.search(bm25.query_terms(q), k)
            bm25.index.doc_ids.take(docnos)
        qps = len(queries) / (time.perf_counter() - start)
        print(f"{len(queries)} queries at k={k}: {qps:,.0f} q/s", resident())
    if group:
        peak = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
        print(f"cgroup limit {args.limit_mb} MB: peak usage {peak:.0f} MB (page cache included), "
              f"{(group / 'memory.failcnt').read_text().strip()} times at the limit")
        (CGROUP / "cgroup.procs").write_text(str(os.getpid()))  # leave the group so that it can be removed
        group.rmdir()


if __name__ == "__main__":
    main()
