"""Where BM25 search's resident memory goes: numba's kernels and LLVM, then the index pages queries touch.

Opens a BM25 index (default: the pypi-summaries index bench_bm25.py leaves in /tmp/bench-work), then prints the
process's resident memory, split into anonymous and file-backed, after each step: importing, opening the index,
the first query (which loads the compiled kernels), and 2,000 MS MARCO queries at k=10 and again at k=1000 with
their ids fetched. File-backed growth after the first query is index pages the queries touched (page cache:
shared with other processes and reclaimable).

    PYTHONPATH=src python bench/search_memory.py [--index /tmp/bench-work/rankstack-pypi-summaries]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-summaries" / "queries.msmarco-dev-small.jsonl"


def resident() -> dict[str, int]:
    """MB resident: total, anonymous, file-backed (from /proc/self/status)."""
    fields = {"VmRSS": "total", "RssAnon": "anonymous", "RssFile": "file"}
    with open("/proc/self/status", encoding="utf-8") as f:
        return {fields[k]: int(v.split()[0]) // 1024 for k, v in (line.split(":", 1) for line in f) if k in fields}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="/tmp/bench-work/rankstack-pypi-summaries")
    ap.add_argument("--queries", type=int, default=2000)
    args = ap.parse_args()
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
        for q in queries:
            docnos, _ = bm25.index.search(bm25.query_terms(q), k)
            bm25.index.doc_ids.take(docnos)
        print(f"{len(queries)} queries at k={k}", resident())


if __name__ == "__main__":
    main()
