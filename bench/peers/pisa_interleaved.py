"""rankstack and PISA on the same machine, their passes interleaved: a fair ratio even while other jobs run.

Opens a rankstack BM25 index and a PISA index that bench/peers/bm25_peers.py built (--workdir of bench_bm25.py),
then, pass after pass, times each engine in turn (rankstack, then each PISA algorithm through its C++ retrieve
call, the order rotating every pass) on the same queries, one thread: a batch of queries in one call (text in,
external ids and scores out) and one query per call (rankstack's public BM25.search). Reports each engine's
fastest pass and its ratio to rankstack's. Run it in the peers venv:

    bench/.venv-peers/bin/python bench/peers/pisa_interleaved.py --workdir /tmp/bench-work [--passes 5]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bm25_peers  # noqa: E402

SAFE = ("block_max_maxscore", "block_max_wand", "maxscore", "wand", "ranked_or")  # exact top-k algorithms


def one_by_one(search, queries, k):
    """Each query in its own call, its hits dropped once returned, as a service answering one request at a time
    does (keeping all 2,000 results alive would time the allocator and the garbage collector walking them)."""
    for q in queries:
        search(q, k)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/bench-work")
    p.add_argument("--corpus", default=str(Path(__file__).resolve().parents[3] / "shared/data/pypi-summaries/"
                                         "corpus.jsonl.gz"))
    p.add_argument("--queries", default=str(Path(__file__).resolve().parents[3] / "shared/data/pypi-summaries/"
                                          "queries.msmarco-dev-small.jsonl"))
    p.add_argument("--num-queries", type=int, default=2000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--algorithms", nargs="+", default=list(SAFE), choices=bm25_peers.PISA_ALGORITHMS)
    args = p.parse_args()
    import numba
    numba.set_num_threads(1)
    tag = Path(args.corpus).parent.name
    ids, _ = bm25_peers.read_corpus(args.corpus)
    _, queries = bm25_peers.read_queries(args.queries, args.num_queries)
    a = SimpleNamespace(threads=1, workdir=args.workdir, tag=tag)
    engines = {"rankstack": bm25_peers.make_rankstack(a).open(Path(args.workdir) / f"rankstack-{tag}", ids)}
    pisa = bm25_peers.make_pisa(a)
    variants = dict(pisa.variants)
    for algorithm in args.algorithms:
        engines[f"pisa-{algorithm}"] = variants[f"pisa-{algorithm}-cpp"](Path(args.workdir) / f"pisa-{tag}", ids)
    loads = {}
    for name, (search, batch) in engines.items():
        for k in args.k:
            loads[name, f"batch k={k}"] = (lambda b, k: lambda: b(queries, k, 1))(batch, k)
            loads[name, f"one per call k={k}"] = (lambda s, k: lambda: one_by_one(s, queries, k))(search, k)
    for call in loads.values():  # warm up
        call()
    best = {key: float("inf") for key in loads}
    names, load0 = list(engines), os.getloadavg()[0]
    for i in range(args.passes):
        order = names[i % len(names):] + names[:i % len(names)]
        for what in sorted({w for _, w in loads}):
            for name in order:
                t0 = time.perf_counter()
                loads[name, what]()
                best[name, what] = min(best[name, what], time.perf_counter() - t0)
    whats = sorted({w for _, w in loads}, key=lambda w: (w.startswith("one"), int(w.split("=")[1])))
    print(f"fastest of {args.passes} interleaved passes, {len(queries)} queries, 1 thread; load average "
          f"{load0:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores); q/s (ratio to rankstack)")
    print("| engine | " + " | ".join(whats) + " |\n|---" * 1 + "|---" * len(whats) + "|")
    for name in names:
        cells = [f"{len(queries) / best[name, w]:,.0f} ({best['rankstack', w] / best[name, w]:.2f}x)" for w in whats]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps({f"{n} {w}": len(queries) / t for (n, w), t in best.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
