"""`rankstack encode`: encode a corpus into resumable shards alone (as `pyserini.encode`), for `rankstack index
--shards` to build from later, or for another machine to encode while this one indexes."""

from __future__ import annotations

from rankstack.cli import common

TYPES = ("dense", "splade", "inference-free")


def register(sub) -> None:
    p = sub.add_parser("encode", help="encode a corpus into resumable shards (then: rankstack index --shards)",
                       description="Encode a corpus with a dense or learned sparse encoder into shards of "
                                   "--shard-size documents, each written atomically: run it again after a crash and "
                                   "it skips the shards already written. `rankstack index CORPUS INDEX --type T "
                                   "--encoder M --shards DIR` then builds the index from them without encoding.")
    p.add_argument("corpus", help="corpus file or a collection name such as beir/scifact")
    p.add_argument("shards", help="folder for the shards")
    p.add_argument("--type", choices=TYPES, required=True)
    p.add_argument("--corpus-format", "--format", dest="corpus_format", choices=["jsonl", "tsv"],
                   help="corpus format (default: from the file name)")
    p.add_argument("--shard-size", type=int, default=10_000, help="documents per shard (default 10,000); a resumed "
                                                                  "run must use the same size")
    common.add_progress_option(p)
    common.add_encoder_options(p, model_required=True)
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data import resolve
    from rankstack.encoders import encode_corpus_to_shards

    corpus = resolve.corpus(args.corpus, args.corpus_format)
    encoder = common.make_encoder(args.type, args)
    # The texts the index builders encode: title + text; learned sparse skips empty documents.
    texts = [0]

    def counted():
        for d in corpus:
            if args.type == "dense" or d.contents.strip():
                texts[0] += 1
                yield d.contents

    written: list[int] = []
    with common.Timer() as timer:
        paths = encode_corpus_to_shards(encoder, counted(), args.shards, args.shard_size,
                                        on_shard=lambda i, path: written.append(i))
    encoded = sum(min(args.shard_size, texts[0] - i * args.shard_size) for i in written)
    common.report(f"encoded {common.rate(encoded, 'documents', timer.seconds)} into {args.shards}: {len(paths)} "
                  f"shards, {len(paths) - len(written)} of them already complete")
