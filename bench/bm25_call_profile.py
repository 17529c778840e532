"""Where one BM25 query's time goes, per call: the index's search alone, turning the hits' doc numbers into id
strings, building the list of (id, score) pairs, and the whole public `BM25.search(text, k)`. Each step is timed
over the same queries, one thread, best of --repeat, each call's result dropped once made (as a service does).

    PYTHONPATH=src python bench/bm25_call_profile.py --index /tmp/bench-work/rankstack-pypi-summaries [--k 10 1000]

(`--index`: a BM25 index of pypi-summaries, e.g. the one bench/bench_bm25.py builds in its --workdir.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERIES = HERE.parents[1] / "shared" / "data" / "pypi-summaries" / "queries.msmarco-dev-small.jsonl"


def best_us(fn, items, repeat: int) -> float:
    """Fastest of `repeat` passes of fn(item) over items, in µs per item."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return round(best / len(items) * 1e6, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--queries", type=Path, default=QUERIES)
    p.add_argument("--num-queries", type=int, default=2000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    import numba
    numba.set_num_threads(1)
    sys.path.insert(0, str(HERE / "peers"))
    from bm25_peers import read_queries
    from rankstack import BM25

    _, queries = read_queries(str(args.queries), args.num_queries)
    bm25 = BM25(args.index, progress=False)
    index, doc_ids, params = bm25.index, bm25.index.doc_ids, bm25.params
    terms = [bm25.query_terms(q) for q in queries]
    report = {"queries": len(queries), "index": str(args.index)}
    for k in args.k:
        hits = [index.search([t], k, params)[0] for t in terms]
        report[f"k={k}"] = {
            "search": best_us(lambda t: index.search([t], k, params), terms, args.repeat),
            "ids": best_us(lambda h: doc_ids.take(h.docnos), hits, args.repeat),
            "ids and (id, score) pairs": best_us(lambda h: list(zip(doc_ids.take(h.docnos), h.scores.tolist())), hits,
                                                 args.repeat),
            "BM25.search": best_us(lambda q: bm25.search(q, k), queries, args.repeat)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
