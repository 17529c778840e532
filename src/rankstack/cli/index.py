"""`rankstack index`: build a BM25, learned sparse, dense or late-interaction index from a corpus file or a named
collection (the flags follow the Python API: BM25.build, LearnedSparse.build, Dense.build, LateInteraction.build)."""

from __future__ import annotations

from rankstack.cli import common

TYPES = ("bm25", *common.ENCODER_TYPES)


def register(sub) -> None:
    p = sub.add_parser("index", help="build a BM25, learned sparse, dense or late-interaction index",
                       description="Build an index from a corpus file (BEIR JSONL or TSV, .gz allowed) or a collection "
                                   "name. Neural types encode with --encoder (a hub id, a model folder or "
                                   "package:NAME).")
    p.add_argument("corpus", help="corpus file or a collection name such as beir/scifact")
    p.add_argument("index", help="index directory to create")
    p.add_argument("--type", choices=TYPES, default="bm25",
                   help="bm25 (default), splade or inference-free (learned sparse), dense (FAISS), late (PLAID)")
    p.add_argument("--corpus-format", "--format", dest="corpus_format", choices=["jsonl", "tsv"],
                   help="corpus format (default: from the file name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    common.add_progress_option(p)
    bm25 = p.add_argument_group("bm25")
    bm25.add_argument("--k1", type=float, default=0.9, help="(default 0.9, as Anserini; searches may choose others)")
    bm25.add_argument("--b", type=float, default=0.4, help="(default 0.4)")
    bm25.add_argument("--stemmer", default="porter", help="porter (Anserini's), english (Snowball), none, ...")
    bm25.add_argument("--stopwords", default="lucene", help="lucene (Anserini's), english, or none")
    bm25.add_argument("--length-norm", choices=["lucene", "exact"], default="lucene",
                      help="Lucene's lossy document-length encoding (as Anserini) or exact lengths")
    bm25.add_argument("--workers", type=int, help="analyse and invert in this many worker processes")
    bm25.add_argument("--reorder", action="store_true", help="renumber documents by recursive graph bisection "
                                                             "(a slower build; README: what it gains)")
    bm25.add_argument("--no-store", action="store_true", help="bm25 / learned sparse: do not store document texts")
    common.add_encoder_options(p)
    enc = p.add_argument_group("resumable encoding (dense, learned sparse)")
    enc.add_argument("--shards", metavar="DIR", help="encode into shards in DIR first (see `rankstack encode`); a "
                                                     "rerun after a crash skips the shards already written")
    enc.add_argument("--shard-size", type=int, default=10_000, help="documents per shard (default 10,000)")
    sparse = p.add_argument_group("learned sparse")
    sparse.add_argument("--impact-bits", type=int, choices=[8, 16], default=8, help="quantisation of weights")
    sparse.add_argument("--approximate", action="store_true", help="also build the Seismic index (--algorithm "
                                                                   "seismic at search time)")
    dense = p.add_argument_group("dense")
    dense.add_argument("--factory", default="Flat", help="FAISS factory string: Flat (default), HNSW32, IVF1024,PQ32")
    dense.add_argument("--metric", choices=["ip", "l2"], default="ip")
    dense.add_argument("--store-vectors", choices=["float16", "float32"],
                       help="dense / late: also store the vectors (for exact rescoring)")
    late = p.add_argument_group("late interaction")
    late.add_argument("--nbits", type=int, default=2, help="bits per residual dimension (default 2)")
    late.add_argument("--num-centroids", type=int, help="default: ColBERTv2's rule")
    late.add_argument("--kmeans-iters", type=int, default=10)
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import resolve

    _check_flags(args)
    common.check_overwrite(args.index, args.overwrite)
    corpus = resolve.corpus(args.corpus, args.corpus_format)
    progress = common.progress(args)
    encoder = None if args.type == "bm25" else common.make_encoder(args.type, args)
    with common.Timer() as timer:
        if encoder is None:
            from rankstack.retrieve.bm25 import BM25
            from rankstack.text.analyzer import Analyzer

            stage = BM25.build(corpus, args.index, analyzer=Analyzer(stemmer=args.stemmer, stopwords=args.stopwords),
                               k1=args.k1, b=args.b, length_norm=args.length_norm, store=not args.no_store,
                               overwrite=args.overwrite, progress=progress, workers=args.workers,
                               reorder=args.reorder)
        else:
            stage = _build_neural(args, corpus, encoder, progress)
    common.report(f"indexed {common.rate(_count(stage), 'documents', timer.seconds)} into {args.index} ({args.type})")


def _build_neural(args, corpus, encoder, progress):
    shards = {"shards": args.shards, "shard_size": args.shard_size} if args.shards else {}
    if args.type in ("splade", "inference-free"):
        from rankstack.retrieve.sparse import LearnedSparse

        stage = LearnedSparse.build(corpus, args.index, encoder, impact_bits=args.impact_bits, store=not args.no_store,
                                    overwrite=args.overwrite, progress=progress, **shards)
        if args.approximate:
            stage.build_approximate()
        return stage
    if args.type == "dense":
        from rankstack.retrieve.dense import Dense

        return Dense.build(corpus, args.index, encoder, factory=args.factory, metric=args.metric,
                           store_vectors=args.store_vectors, overwrite=args.overwrite, **shards)
    from rankstack.retrieve.late import LateInteraction

    return LateInteraction.build(corpus, args.index, encoder, nbits=args.nbits, num_centroids=args.num_centroids,
                                 kmeans_iters=args.kmeans_iters, store_vectors=args.store_vectors,
                                 overwrite=args.overwrite, progress=progress)


def _check_flags(args) -> None:
    """Flags of one index type given for another are an error, not silently ignored."""
    from rankstack.errors import InputError

    defaults = {"k1": 0.9, "b": 0.4, "stemmer": "porter", "stopwords": "lucene", "length_norm": "lucene",
                "impact_bits": 8, "approximate": False, "factory": "Flat", "metric": "ip", "nbits": 2,
                "num_centroids": None, "kmeans_iters": 10, "store_vectors": None, "shards": None, "no_store": False,
                "workers": None, "reorder": False}
    applies = {"bm25": {"k1", "b", "stemmer", "stopwords", "length_norm", "no_store", "workers", "reorder"},
               "splade": {"impact_bits", "approximate", "shards", "no_store"},
               "dense": {"factory", "metric", "store_vectors", "shards"},
               "late": {"nbits", "num_centroids", "kmeans_iters", "store_vectors"}}
    applies["inference-free"] = applies["splade"]
    wrong = [name for name, default in defaults.items()
             if getattr(args, name) != default and name not in applies[args.type]]
    if args.type == "bm25" and (args.encoder or args.device or args.batch_size or args.dtype != "auto"):
        raise InputError("--encoder, --device, --batch-size and --dtype apply to neural indexes: choose one with "
                         "--type (splade, inference-free, dense or late)")
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise InputError(f"{flags} do{'es' if len(wrong) == 1 else ''} not apply to --type {args.type}")


def _count(stage) -> int:
    """Live documents of the stage's index."""
    index = stage.index
    return len(index) if hasattr(index, "__len__") else int(index.num_docs)
