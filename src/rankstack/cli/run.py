"""`rankstack run`: run a pipeline expression (the grammar of `repr(pipeline)`) over a queries file."""

from __future__ import annotations

import argparse

from rankstack.cli import common


def register(sub) -> None:
    p = sub.add_parser("run", help="run a pipeline expression over queries, write the run",
                       description="Run a pipeline written as `repr(pipeline)` prints it, indexes named by path, e.g. "
                                   "\"(BM25('idx/bm25') | Dense('idx/dense')).rrf() % 100\". Second stages "
                                   "(rerankers) read a first-stage run given with --run.")
    p.add_argument("expression", help="pipeline expression (rankstack.pipeline.config.parse)")
    p.add_argument("--queries", required=True, help="queries file (JSONL, TSV, TREC topics) or a collection name")
    p.add_argument("--run", dest="input_run", help="a run file the pipeline starts from (for a pipeline of second "
                                                   "stages)")
    p.add_argument("-k", "--hits", dest="k", type=int, help="keep the top k hits of each query")
    p.add_argument("--remove-query", action=argparse.BooleanOptionalAction, default=None,
                   help="drop hits whose id equals the query id (on by default for beir/arguana, beir/quora)")
    common.add_output_options(p, "rankstack")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.cli.search import remove_query_default
    from rankstack.data import resolve
    from rankstack.data.run import Run
    from rankstack.pipeline.config import parse

    stage = parse(args.expression)
    queries = resolve.queries(args.queries)
    first = None
    if args.input_run:
        first = Run.read(args.input_run)
        queries = matching_queries(queries, first, args.input_run)
    elif not stage.first_stage:
        from rankstack.errors import InputError

        raise InputError(f"{args.expression!r} starts with a second stage: give the run it reranks with --run, or "
                         "start the expression with a first stage such as BM25('index')")
    remove = remove_query_default(args, args.queries)
    if args.k:  # a cut-off the pipeline's first stage searches at (one more hit when the query's own is dropped)
        stage = stage % (args.k + 1 if remove else args.k)
    with common.Timer() as timer:
        result = stage(queries, first)
    if remove:
        result = result.remove_query_ids()
    if args.k:
        result = result.cut(args.k)
    common.write_run(result, args)
    common.report(f"ran {common.rate(len(queries), 'queries', timer.seconds)}; run written to {args.output}")


def matching_queries(queries, run, source: str):
    """The queries a run holds results for; InputError when it holds none of them (a run for other queries)."""
    from rankstack.errors import InputError

    shared = [q for q in queries if q in run]
    if not shared:
        example = next(iter(run), None)
        raise InputError(f"{source} holds results for none of the {len(queries):,} queries given (its first query id "
                         f"is {example!r}): a run for other queries?")
    missing = len(queries) - len(shared)
    if missing:
        import warnings

        warnings.warn(f"{source} holds no results for {missing:,} of the {len(queries):,} queries; they are skipped")
    return queries.subset(shared)
