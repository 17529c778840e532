"""Document reordering by recursive graph bisection (`BM25.build(reorder=True)`) against the corpus order, on a
slice of pypi-summaries: build time, postings bytes, and single-thread search q/s of each algorithm (MaxScore,
Block-Max WAND, Block-Max Pruning, exhaustive) at k=10 and k=1000 on the MS MARCO queries, both indexes in one run,
passes taking turns.

    PYTHONPATH=src python bench/bench_reorder.py [--docs 200000] [--queries 2000] [--passes 3]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import orjson

from rankstack import BM25, Document, Queries

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-summaries"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    docs = []
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        for line in f:
            if len(docs) >= args.docs:
                break
            d = orjson.loads(line)
            docs.append(Document(d["_id"], d["text"], d.get("title") or ""))
    texts = [orjson.loads(x)["text"] for x in (DATA / "queries.msmarco-dev-small.jsonl").read_text().splitlines()]
    queries = Queries({str(i): q for i, q in enumerate(texts[:args.queries])})
    BM25.build(docs[:3000], Path(tempfile.mkdtemp()) / "warm", progress=False, reorder=True)(queries)  # compile
    first = next(iter(queries))
    stages, rows = {}, {}
    work = Path(tempfile.mkdtemp(prefix="bench-reorder-"))
    for name, reorder in (("corpus order", False), ("reordered", True)):
        t, cpu = time.perf_counter(), time.process_time()
        stage = BM25.build(docs, work / name.replace(" ", "-"), progress=False, store=False, reorder=reorder)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        stages[name] = stage
        size = sum(int(a.nbytes) for seg in stage.index.segments for a in seg.postings.values())
        rows[name] = {"build wall s": f"{wall:.1f}", "build CPU s": f"{cpu:.1f}", "postings MB": f"{size / 1e6:.2f}"}
    for algorithm in ("maxscore", "bmw", "bmp", "exhaustive"):
        for k in (10, 1000):
            best = {name: 0.0 for name in stages}
            for p in range(args.passes):
                for name in (list(stages) if p % 2 == 0 else list(stages)[::-1]):
                    stage = BM25(stages[name].index.path, k=k, algorithm=algorithm, threads=1, progress=False)
                    stage.search(queries[first], k)  # warm: Block-Max Pruning builds its bounds at first use
                    t = time.perf_counter()
                    stage(queries)
                    best[name] = max(best[name], len(queries) / (time.perf_counter() - t))
            for name in stages:
                rows[name][f"{algorithm} k={k} q/s"] = f"{best[name]:,.0f}"
    keys = list(next(iter(rows.values())))
    print(f"pypi-summaries, first {len(docs):,} documents, {len(queries):,} MS MARCO queries, one thread, best of "
          f"{args.passes} passes taking turns")
    print("| | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(row[k] for k in keys) + " |")


if __name__ == "__main__":
    main()
