"""`rankstack search`: one query, or a queries file into a run file."""

from __future__ import annotations

import sys
import time


def register(sub) -> None:
    p = sub.add_parser("search", help="search an index with one query or a queries file")
    p.add_argument("index")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", "-q", help="one query; prints the ranking")
    group.add_argument("--queries", help="queries file (JSONL, TSV, TREC topics) or a collection name")
    p.add_argument("-k", type=int, default=None, help="hits per query (default 1000; 10 with --query)")
    p.add_argument("--output", "-o", default="run.trec", help="run file to write (.trec or .jsonl)")
    p.add_argument("--run-name", default="rankstack-bm25")
    p.add_argument("--algorithm", choices=["maxscore", "bmw", "exhaustive"], default="maxscore")
    p.add_argument("--threads", type=int, default=None, help="threads for batch search (default: all cores)")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import resolve
    from rankstack.retrieve.bm25 import BM25

    k = args.k or (10 if args.query is not None else 1000)
    bm25 = BM25(args.index, k=k, algorithm=args.algorithm, threads=args.threads)
    if args.query is not None:
        for rank, (doc_id, score) in enumerate(bm25.search(args.query, k), start=1):
            print(f"{rank:4d}  {score:9.4f}  {doc_id}")
        return
    queries = resolve.queries(args.queries)
    start = time.perf_counter()
    run = bm25(queries)
    elapsed = time.perf_counter() - start
    run.name = args.run_name
    if args.output.endswith((".jsonl", ".jsonl.gz")):
        run.write_jsonl(args.output)
    else:
        run.write_trec(args.output)
    print(f"searched {len(queries):,} queries in {elapsed:.2f}s ({len(queries) / elapsed:,.0f} queries/s); "
          f"run written to {args.output}", file=sys.stderr)
