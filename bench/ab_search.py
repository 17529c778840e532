"""Search speed of two rankstack source trees in one run: BM25 on pypi-summaries, one thread, k=10 and k=1000, and
the pipelines `bm25 % 10` and `bm25 % 100` (a cut-off after a first stage of k=1000).

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/ab_search.py --old /tmp/before/src --new src [--rounds 5]

Each tree builds its own index (the formats may differ), then the trees take turns, round after round, each
running the same 2,000 queries one per call and as one batch (one thread, and two) in a worker process of its
own; the best and the
median of the rounds are reported per tree, with the new/old ratio. Taking turns spreads the noise of a shared
machine over both sides.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import abtest

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
    batch = lambda k, threads=1: index.search_batch(bags, k, threads=threads)
else:
    from rankstack.index.search import InvertedParams
    single = InvertedParams(threads=1)
    one = lambda bag, k: index.search([bag], k, single)[0]
    batch = lambda k, threads=1: index.search(bags, k, InvertedParams(threads=threads))
batch_queries = Queries({str(i): q for i, q in enumerate(queries)})
pipelines = {"pipeline_cut10": bm25 % 10, "pipeline_cut100": bm25 % 100}
for k in (10, 1000):  # compile and warm up
    for bag in bags[:200]:
        one(bag, k)
    batch(k)
    batch(k, 2)
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
        t = time.perf_counter()
        batch(k, 2)
        out[f"batch2_k{k}"] = len(bags) / (time.perf_counter() - t)
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
    ready, results = abtest.run(WORKER, {"old": args.old, "new": args.new},
                                [f"{args.work}/{{side}}", str(DATA), str(args.queries)], args.rounds, threads=2)
    print(f"pypi-summaries, {args.queries} MS MARCO queries, one thread (batch2: two), {args.rounds} rounds taking "
          f"turns (q/s: best / median); builds: old {ready['old']['build_s']}, new {ready['new']['build_s']} s")
    print(abtest.table(results, ("one_k10", "one_k1000", "batch_k10", "batch_k1000", "batch2_k10", "batch2_k1000",
                                 "pipeline_cut10", "pipeline_cut100")))


if __name__ == "__main__":
    main()
