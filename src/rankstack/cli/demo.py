"""`rankstack demo`: the main job on the embedded SciFact (offline)."""

from __future__ import annotations

import tempfile
import time


def register(sub) -> None:
    p = sub.add_parser("demo", help="index the embedded SciFact, search, evaluate, print the table (offline)")
    p.add_argument("--collection", default="beir/scifact")
    p.add_argument("--index", help="where to build the index (default: a temporary directory)")
    p.add_argument("-k", type=int, default=1000)
    p.add_argument("--measure", "-m", dest="measures", action="append")
    p.add_argument("--output", "-o", help="also write the run to this TREC file")
    p.set_defaults(func=run)


def run(args) -> None:
    """Index a collection with BM25, search its queries, evaluate, print the table."""
    from rankstack.data import datasets
    from rankstack.evaluate import compare
    from rankstack.retrieve.bm25 import BM25

    dataset = datasets.load(args.collection)
    index = args.index or tempfile.mkdtemp(prefix="rankstack-demo-")
    print(f"collection: {dataset.name} ({dataset.root})")
    start = time.perf_counter()
    bm25 = BM25.build(dataset.corpus, index, overwrite=True, k=args.k)
    print(f"indexed {len(bm25.index):,} documents in {time.perf_counter() - start:.1f}s -> {index}")
    start = time.perf_counter()
    run = bm25(dataset.queries)
    print(f"searched {len(dataset.queries):,} queries in {time.perf_counter() - start:.2f}s")
    if args.output:
        run.write_trec(args.output)
        print(f"run written to {args.output}")
    print()
    print(compare([run], dataset.qrels, args.measures or ["nDCG@10", "R@100", "RR@10", "AP"]).to_table())
