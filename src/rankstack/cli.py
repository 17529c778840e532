"""The `rankstack` command: index, search, eval, experiment, demo, datasets."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rankstack.errors import RankstackError

DEFAULT_MEASURES = ["nDCG@10", "R@100"]


def _is_collection_name(value: str) -> bool:
    from rankstack.data import datasets

    return value.strip("/") in datasets.COLLECTIONS and not Path(value).exists()


def _corpus(value: str, format: str | None):
    from rankstack.data import datasets
    from rankstack.data.corpus import Corpus

    return datasets.load(value).corpus if _is_collection_name(value) else Corpus(value, format)


def _queries(value: str):
    from rankstack.data import datasets
    from rankstack.data.queries import Queries

    return datasets.load(value).queries if _is_collection_name(value) else Queries.read(value)


def _qrels(value: str):
    from rankstack.data import datasets
    from rankstack.data.qrels import Qrels

    return datasets.load(value).qrels if _is_collection_name(value) else Qrels.read(value)


def cmd_index(args) -> None:
    from rankstack.retrieve.bm25 import BM25
    from rankstack.text.analyzer import Analyzer

    analyzer = Analyzer(stemmer=args.stemmer, stopwords=args.stopwords)
    start = time.perf_counter()
    bm25 = BM25.build(_corpus(args.corpus, args.format), args.index, analyzer=analyzer, k1=args.k1, b=args.b,
                      length_norm=args.length_norm, store=not args.no_store, overwrite=args.overwrite)
    print(f"indexed {len(bm25.index):,} documents into {args.index} in {time.perf_counter() - start:.1f}s")


def cmd_search(args) -> None:
    from rankstack.retrieve.bm25 import BM25

    bm25 = BM25(args.index, k=args.k, algorithm=args.algorithm, threads=args.threads)
    if args.query is not None:
        for rank, (doc_id, score) in enumerate(bm25.search(args.query, args.k), start=1):
            print(f"{rank:4d}  {score:9.4f}  {doc_id}")
        return
    queries = _queries(args.queries)
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


def cmd_eval(args) -> None:
    from rankstack.data.run import Run
    from rankstack.evaluate import compare

    runs = [Run.read(path) for path in args.runs]
    comparison = compare(runs, _qrels(args.qrels), args.measures or DEFAULT_MEASURES, baseline=args.baseline,
                         test=args.test, correction=None if args.correction == "none" else args.correction,
                         alpha=args.alpha, complete=args.complete)
    text = {"table": comparison.to_table, "json": comparison.to_json, "csv": comparison.to_csv}[args.format]()
    if args.output:
        Path(args.output).write_text(text + ("\n" if not text.endswith("\n") else ""))
    else:
        print(text)


def cmd_demo(args) -> None:
    """The main job: index a collection with BM25, search its queries, evaluate, print the table."""
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


def cmd_experiment(args) -> None:
    """Run the experiment a JSON config file describes (see rankstack.experiment.from_config)."""
    from rankstack.experiment import run_config

    experiment, report = run_config(args.config)
    print(experiment.table())
    if report:
        print(f"report written to {report}")


def cmd_datasets(args) -> None:
    from rankstack.data import datasets

    for name in datasets.names():
        print(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rankstack", description="Multi-stage search and evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search an index with one query or a queries file")
    p.add_argument("index")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", "-q", help="one query; prints the ranking")
    group.add_argument("--queries", help="queries file (JSONL, TSV, TREC topics) or a collection name")
    p.add_argument("-k", type=int, default=1000, help="hits per query (default 1000; 10 with --query)")
    p.add_argument("--output", "-o", default="run.trec", help="run file to write (.trec or .jsonl)")
    p.add_argument("--run-name", default="rankstack-bm25")
    p.add_argument("--algorithm", choices=["maxscore", "bmw", "exhaustive"], default="maxscore")
    p.add_argument("--threads", type=int, default=None, help="threads for batch search (default: all cores)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("eval", help="evaluate runs against qrels, with significance tests against a baseline")
    p.add_argument("qrels", help="qrels file (TREC or BEIR TSV) or a collection name")
    p.add_argument("runs", nargs="+", help="run files (TREC or JSONL); the first is the baseline by default")
    p.add_argument("--measure", "-m", dest="measures", action="append",
                   help="ir-measures name, repeatable (default: nDCG@10 and R@100); e.g. 'R@100 rel>=2', RR@10, AP")
    p.add_argument("--baseline", type=int, default=0, help="index of the baseline run (default 0)")
    p.add_argument("--test", choices=["t-test", "wilcoxon"], default="t-test")
    p.add_argument("--correction", choices=["holm", "bonferroni", "none"], default="holm")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--complete", action="store_true", help="count judged queries missing from a run as 0 "
                                                           "(trec_eval -c)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", "-o", help="write to this file instead of the terminal")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="index the embedded SciFact, search, evaluate, print the table (offline)")
    p.add_argument("--collection", default="beir/scifact")
    p.add_argument("--index", help="where to build the index (default: a temporary directory)")
    p.add_argument("-k", type=int, default=1000)
    p.add_argument("--measure", "-m", dest="measures", action="append")
    p.add_argument("--output", "-o", help="also write the run to this TREC file")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("experiment", help="run the pipelines of a JSON config, compare them, write a report")
    p.add_argument("config", help="JSON file: queries, qrels, indexes, stages, pipelines, measures, baseline, "
                                  "cache, report (see README)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("datasets", help="list the named collections")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "search" and args.query is not None and "-k" not in (argv or sys.argv):
        args.k = 10
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, *a, **k: f"rankstack: warning: {message}\n"
    try:
        args.func(args)
    except RankstackError as e:
        print(f"rankstack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
