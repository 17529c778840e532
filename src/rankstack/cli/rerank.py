"""`rankstack rerank`: rerank a run file with any reranker (a model name for a cross-encoder, or a stage
expression such as "Listwise('gpt-4o-mini', texts, base_url='http://localhost:8000/v1')")."""

from __future__ import annotations

from rankstack.cli import common


def register(sub) -> None:
    p = sub.add_parser("rerank", help="rerank a run file with a cross-encoder or any reranker expression",
                       description="Rerank the top --depth hits of each query of a run file. RERANKER is a model "
                                   "(hub id, folder, package:NAME) for a cross-encoder, or a stage expression in "
                                   "which the name `texts` stands for the document texts of --texts, e.g. "
                                   "\"BiEncoder(DenseEncoder('model'), texts)\" or \"Listwise('m', texts, "
                                   "base_url='http://localhost:8000/v1')\".")
    p.add_argument("run", help="the run file to rerank (TREC or JSONL)")
    p.add_argument("reranker", help="a cross-encoder model, or a reranker expression")
    p.add_argument("--queries", required=True, help="queries file or a collection name (the run's queries)")
    p.add_argument("--texts", required=True, help="document texts: a corpus file, a collection name, or an index "
                                                  "that stores them (BM25, learned sparse)")
    p.add_argument("--depth", type=int, default=100,
                   help="hits a model given by name reranks per query (default 100; an expression sets its own depth); "
                        "the rest follow")
    p.add_argument("--device", help="cpu, cuda, cuda:N (cross-encoder given by model)")
    p.add_argument("--batch-size", type=int, help="pairs per batch (cross-encoder given by model)")
    p.add_argument("--dtype", choices=common.DTYPES, default="auto",
                   help=common.DTYPE_HELP.replace("precision", "precision (cross-encoder given by model)", 1))
    common.add_progress_option(p)
    common.add_output_options(p, "rankstack-rerank")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.cli.run import matching_queries
    from rankstack.data import resolve
    from rankstack.data.run import Run
    from rankstack.errors import InputError

    first = Run.read(args.run)
    queries = matching_queries(resolve.queries(args.queries), first, args.run)
    texts = _texts(args.texts)
    stage = _reranker(args, texts)
    if stage.first_stage:
        raise InputError(f"{args.reranker!r} is a first stage, not a reranker")
    with common.Timer() as timer:
        result = stage(queries, first)
    common.write_run(result, args)
    common.report(f"reranked {common.rate(len(queries), 'queries', timer.seconds)}; run written to {args.output}")


def _texts(source: str):
    from rankstack.data import resolve
    from rankstack.rerank.texts import CorpusTexts, texts_from

    if resolve.is_collection_name(source):
        return CorpusTexts(resolve.corpus(source))
    return texts_from(source)


def _reranker(args, texts):
    """A model name: a CrossEncoder over `texts`; otherwise an expression, with `texts` (and the encoder classes)
    as names it may use."""
    from rankstack.pipeline.config import parse

    if "(" not in args.reranker:
        from rankstack.rerank.cross_encoder import CrossEncoder

        options = {"device": args.device, "batch_size": args.batch_size, "progress": common.progress(args),
                   "dtype": None if args.dtype == "auto" else args.dtype}
        return CrossEncoder(args.reranker, texts, depth=args.depth,
                            **{k: v for k, v in options.items() if v is not None})
    from rankstack.encoders import DenseEncoder, MultiVectorEncoder, SpladeEncoder

    names = {"texts": texts, "DenseEncoder": DenseEncoder, "SpladeEncoder": SpladeEncoder,
             "MultiVectorEncoder": MultiVectorEncoder}
    return parse(args.reranker, names)
