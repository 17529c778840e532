"""`rankstack index`: build an index from a corpus file or a named collection."""

from __future__ import annotations

import time


def register(sub) -> None:
    p = sub.add_parser("index", help="build a BM25 index from a corpus file or a named collection")
    p.add_argument("corpus", help="corpus file (JSONL/TSV, .gz allowed) or a collection name such as beir/scifact")
    p.add_argument("index", help="index directory to create")
    p.add_argument("--format", choices=["jsonl", "tsv"], help="corpus format (default: from the file name)")
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--stemmer", default="porter", help="porter (Anserini's), english (Snowball), none, ...")
    p.add_argument("--stopwords", default="lucene", help="lucene (Anserini's), english, or none")
    p.add_argument("--length-norm", choices=["lucene", "exact"], default="lucene",
                   help="Lucene's lossy document-length encoding (as Anserini) or exact lengths")
    p.add_argument("--no-store", action="store_true", help="do not store document texts")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    p.add_argument("--workers", type=int, help="analyse and invert in this many worker processes")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import resolve
    from rankstack.retrieve.bm25 import BM25
    from rankstack.text.analyzer import Analyzer

    analyzer = Analyzer(stemmer=args.stemmer, stopwords=args.stopwords)
    start = time.perf_counter()
    bm25 = BM25.build(resolve.corpus(args.corpus, args.format), args.index, analyzer=analyzer, k1=args.k1, b=args.b,
                      length_norm=args.length_norm, store=not args.no_store, overwrite=args.overwrite,
                      workers=args.workers)
    print(f"indexed {len(bm25.index):,} documents into {args.index} in {time.perf_counter() - start:.1f}s")
