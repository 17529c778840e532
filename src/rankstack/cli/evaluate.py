"""`rankstack eval`: evaluate runs against qrels, with significance tests against a baseline."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

DEFAULT_MEASURES = ["nDCG@10", "R@100"]


def register(sub) -> None:
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
    p.add_argument("--remove-query", action=argparse.BooleanOptionalAction, default=None,
                   help="drop hits whose id equals the query id before evaluating (BEIR's ignore_identical_ids); on "
                        "by default for the qrels of beir/arguana and beir/quora")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", "-o", help="write to this file instead of the terminal")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import resolve
    from rankstack.data.run import Run
    from rankstack.evaluate import TiedScoresWarning, compare

    from rankstack.cli.search import remove_query_default

    runs = [Run.read(path) for path in args.runs]
    if remove_query_default(args, args.qrels):
        runs = [run.remove_query_ids() for run in runs]
    with warnings.catch_warnings():
        if args.format != "csv":  # the table and JSON carry the tie note: a warning would say it twice
            warnings.simplefilter("ignore", TiedScoresWarning)
        comparison = compare(runs, resolve.qrels(args.qrels), args.measures or DEFAULT_MEASURES,
                             baseline=args.baseline, test=args.test,
                             correction=None if args.correction == "none" else args.correction, alpha=args.alpha,
                             complete=args.complete)
    text = {"table": comparison.to_table, "json": comparison.to_json, "csv": comparison.to_csv}[args.format]()
    if args.output:
        Path(args.output).write_text(text + ("\n" if not text.endswith("\n") else ""))
    else:
        print(text)
