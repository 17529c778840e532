"""Search speed of two rankstack source trees in one run: BM25 on pypi-summaries, one thread, k=10 and k=1000, and
the pipelines `bm25 % 10` and `bm25 % 100` (a cut-off after a first stage of k=1000).

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/ab_search.py --old /tmp/before/src --new src [--rounds 5]

Each tree builds its own index (the formats may differ), then the trees take turns, round after round, each
running the same 2,000 queries one per call and as one batch in a worker process of its own; the best and the
median of the rounds are reported per tree, with the new/old ratio. Taking turns spreads the noise of a shared
machine over both sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pypi-summaries"

WORKER = r"""
import json, sys, time
from pathlib import Path
import orjson
from rankstack import BM25, Document, Queries
from rankstack.index.inverted import InvertedIndex

index_dir, data, n, rounds_in = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.stdin
if not (index_dir / "manifest.json").exists():
    import gzip
    def docs():
        with gzip.open(data / "corpus.jsonl.gz", "rt") as f:
            for line in f:
                d = orjson.loads(line)
                yield Document(d["_id"], d["text"], d.get("title") or "")
    t = time.perf_counter()
    BM25.build(docs(), index_dir, store=False, progress=False)
    print(json.dumps({"build_s": time.perf_counter() - t}), flush=True)
else:
    print(json.dumps({"build_s": None}), flush=True)
bm25 = BM25(index_dir, progress=False, threads=1)
index = bm25.index
queries = [orjson.loads(l)["text"] for l in (data / "queries.msmarco-dev-small.jsonl").read_text().splitlines()][:n]
bags = [bm25.query_terms(q) for q in queries]
old_api = hasattr(InvertedIndex, "search_batch")
if old_api:
    one = lambda bag, k: index.search(bag, k)
    batch = lambda k: index.search_batch(bags, k, threads=1)
else:
    from rankstack.index.search import InvertedParams
    single = InvertedParams(threads=1)
    one = lambda bag, k: index.search([bag], k, single)[0]
    batch = lambda k: index.search(bags, k, single)
batch_queries = Queries({str(i): q for i, q in enumerate(queries)})
pipelines = {"pipeline_cut10": bm25 % 10, "pipeline_cut100": bm25 % 100}
for k in (10, 1000):  # compile and warm up
    for bag in bags[:200]:
        one(bag, k)
    batch(k)
for p in pipelines.values():
    p(Queries({"0": queries[0]}))
for line in rounds_in:
    out = {}
    for k in (10, 1000):
        t = time.perf_counter()
        for bag in bags:
            one(bag, k)
        out[f"one_k{k}"] = len(bags) / (time.perf_counter() - t)
        t = time.perf_counter()
        batch(k)
        out[f"batch_k{k}"] = len(bags) / (time.perf_counter() - t)
    for name, p in pipelines.items():
        t = time.perf_counter()
        p(batch_queries)
        out[name] = len(bags) / (time.perf_counter() - t)
    print(json.dumps(out), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="src folder of the first tree")
    parser.add_argument("--new", required=True, help="src folder of the second tree")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--work", default="/tmp/rankstack-ab", help="where the two indexes are built")
    args = parser.parse_args()
    workers, builds = {}, {}
    for side in ("old", "new"):
        src = str(Path(getattr(args, side)).resolve())
        env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        workers[side] = subprocess.Popen([sys.executable, "-c", WORKER, f"{args.work}/{side}", str(DATA),
                                          str(args.queries)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, env=env, cwd="/tmp")
        builds[side] = json.loads(workers[side].stdout.readline())["build_s"]
    results: dict = {"old": [], "new": []}
    for _ in range(args.rounds):
        for side in ("old", "new"):
            workers[side].stdin.write("go\n")
            workers[side].stdin.flush()
            results[side].append(json.loads(workers[side].stdout.readline()))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    print(f"pypi-summaries, {args.queries} MS MARCO queries, one thread, {args.rounds} rounds taking turns "
          f"(q/s: best / median); builds: old {builds['old']}, new {builds['new']} s")
    print("| | old best | old median | new best | new median | new/old (best) |")
    print("|---|---|---|---|---|---|")
    for key in ("one_k10", "one_k1000", "batch_k10", "batch_k1000", "pipeline_cut10", "pipeline_cut100"):
        o = [r[key] for r in results["old"]]
        n = [r[key] for r in results["new"]]
        print(f"| {key} | {max(o):,.0f} | {statistics.median(o):,.0f} | {max(n):,.0f} | {statistics.median(n):,.0f} "
              f"| {max(n) / max(o):.3f} |")


if __name__ == "__main__":
    main()
