"""Where BM25 search's resident memory goes, and how search runs when memory is scarcer than the index is large.

Opens a BM25 index (default: the pypi-summaries index bench_bm25.py leaves in /tmp/bench-work) after dropping its
files from the page cache, then prints after each step the process's anonymous (private) memory and how much of
the index is in the page cache (mincore over its files): after importing, opening the index, the first query
(which loads the compiled kernels), and 2,000 MS MARCO queries at k=10, then at k=1000, with their ids fetched.
Each batch runs twice: the first pass reads index pages from disk, the second shows the steady state.

With --limit-mb, the whole run (imports included) happens inside a Linux memory cgroup (v1, needs root) that
caps its resident memory, page cache included, at that many MB. Comparing its queries/s with an unlimited run
shows how much memory search needs for a given index size (e.g. bench_scaling.py --sizes 5000000 --keep leaves a
5M-document index).

    PYTHONPATH=src python bench/search_memory.py [--index /tmp/bench-work/rankstack-pypi-summaries]
    PYTHONPATH=src python bench/search_memory.py --index /tmp/bench-scaling/synthetic-5000000 --limit-mb 128
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import time
from pathlib import Path

import numpy as np

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-summaries" / "queries.msmarco-dev-small.jsonl"
CGROUP = Path("/sys/fs/cgroup/memory")
MB = 2**20


def anonymous_mb() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("RssAnon:"))


def cached_bytes(files: list[Path]) -> int:
    """Bytes of these files in the page cache (mincore over a fresh mapping of each)."""
    libc = ctypes.CDLL(None, use_errno=True)
    total = 0
    for path in files:
        size = path.stat().st_size
        if not size:
            continue
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
            view = np.frombuffer(m, np.uint8)
            pages = np.zeros((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE, np.uint8)
            if libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size),
                            ctypes.c_void_p(pages.ctypes.data)):
                raise OSError(ctypes.get_errno(), f"mincore failed on {path}")
            total += int((pages & 1).sum()) * mmap.PAGESIZE
            del view
    return total


def evict(files: list[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def limit_memory(mb: int) -> Path:
    """Move this process into a new memory cgroup capped at `mb` MB."""
    group = CGROUP / f"rankstack-search-memory-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(mb * MB))
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
    files = [p for p in Path(args.index).rglob("*") if p.is_file()]
    evict(files)  # so that every index page the run holds was read by it (and charged to its cgroup)
    group = limit_memory(args.limit_mb) if args.limit_mb else None

    def report(step: str) -> None:
        print(f"{step}: anonymous {anonymous_mb()} MB, index in page cache {cached_bytes(files) / MB:.1f} MB")

    report("start")
    from rankstack import BM25
    report("imported")
    bm25 = BM25(args.index, progress=False)
    report(f"opened ({sum(p.stat().st_size for p in files) / MB:.1f} MB on disk)")
    with open(QUERIES, encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:args.queries]
    bm25.index.search([bm25.query_terms(queries[0])], 10)
    report("first query (kernels loaded)")
    for k in (10, 1000):
        for run in ("first pass", "second pass"):
            start = time.perf_counter()
            for q in queries:
                docnos, _ = bm25.index.search([bm25.query_terms(q)], k)[0]
                bm25.index.doc_ids.take(docnos)
            report(f"{len(queries)} queries at k={k}, {run}: {len(queries) / (time.perf_counter() - start):,.0f} q/s")
    if group:
        peak = int((group / "memory.max_usage_in_bytes").read_text()) / MB
        print(f"cgroup limit {args.limit_mb} MB: peak usage {peak:.0f} MB (page cache included), "
              f"{(group / 'memory.failcnt').read_text().strip()} times at the limit")
        (CGROUP / "cgroup.procs").write_text(str(os.getpid()))  # leave the group so that it can be removed
        group.rmdir()


if __name__ == "__main__":
    main()
