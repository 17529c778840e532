"""What several commands share: encoder and output options, writing runs, rates, the overwrite check."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rankstack.errors import InputError

#: Encoder types `index` and `encode` build, by the name the --type flag takes.
ENCODER_TYPES = ("splade", "inference-free", "dense", "late")
DTYPES = ("auto", "fp32", "fp16", "bf16", "int8")
DTYPE_HELP = ("precision (default: fp32 on CPU, fp16 on CUDA); on a CPU, bf16 (fast where it has bf16 units) or int8 "
              "(dynamic quantisation) are faster and close to fp32 (README, \"Neural stages\")")


def add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")


def add_encoder_options(p: argparse.ArgumentParser, model_required: bool = False) -> None:
    """--encoder and the model options of the encoders' constructors (same names, dashes for underscores)."""
    g = p.add_argument_group("encoder")
    g.add_argument("--encoder", required=model_required, metavar="MODEL",
                   help="hub id, local model folder, or package:NAME (a model shipped by a PyPI package)")
    g.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    g.add_argument("--batch-size", type=int, help="texts per batch (default 32 on CPU, 256 on CUDA)")
    g.add_argument("--dtype", choices=DTYPES, default="auto", help=DTYPE_HELP)
    g.add_argument("--fp16", dest="dtype", action="store_const", const="fp16", help="same as --dtype fp16 (Pyserini)")
    g.add_argument("--max-length", type=int, help="document tokens kept (default: the model's)")
    g.add_argument("--pooling", choices=["mean", "cls", "max"], help="dense: pooling (default: the model's)")
    g.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="dense: L2-normalise vectors (default: the model's)")
    g.add_argument("--prefixes", choices=["e5", "bge"], help="dense: a query/document prefix preset")
    g.add_argument("--query-prefix", help="dense: text put before each query")
    g.add_argument("--document-prefix", help="dense: text put before each document")
    g.add_argument("--document-top-k", type=int, help="learned sparse: keep the k heaviest terms of a document")
    g.add_argument("--idf", help="inference-free: the query weights (idf.json; default: the model folder's)")


def encoder_options(args: argparse.Namespace) -> dict[str, Any]:
    """Device, batch size, precision and progress for any encoder (None values left out)."""
    options = {"device": args.device, "batch_size": args.batch_size,
               "dtype": None if args.dtype == "auto" else args.dtype, "progress": progress(args)}
    return {k: v for k, v in options.items() if v is not None}


def make_encoder(kind: str, args: argparse.Namespace) -> Any:
    """The encoder of `kind` (one of ENCODER_TYPES) for the model of --encoder, with the command's options."""
    if not args.encoder:
        raise InputError(f"--type {kind} needs --encoder MODEL (a hub id, a model folder or package:NAME)")
    common = encoder_options(args)
    if kind == "dense":
        from rankstack.encoders import DenseEncoder

        extra = {"pooling": args.pooling, "normalize": args.normalize, "prefixes": args.prefixes,
                 "query_prefix": args.query_prefix, "document_prefix": args.document_prefix,
                 "max_length": args.max_length}
        return DenseEncoder(args.encoder, **common, **{k: v for k, v in extra.items() if v is not None})
    _refuse_dense_options(kind, args)
    if kind in ("splade", "inference-free"):
        from rankstack.encoders import InferenceFreeSparseEncoder, SpladeEncoder

        extra = {"document_max_length": args.max_length, "document_top_k": args.document_top_k}
        extra = {k: v for k, v in extra.items() if v is not None}
        if kind == "splade":
            if args.idf:
                raise InputError("--idf applies to --type inference-free only")
            return SpladeEncoder(args.encoder, **common, **extra)
        return InferenceFreeSparseEncoder(args.encoder, idf=args.idf, **common, **extra)
    if kind == "late":
        from rankstack.encoders import MultiVectorEncoder

        extra = {"document_max_length": args.max_length} if args.max_length else {}
        return MultiVectorEncoder(args.encoder, **common, **extra)
    raise InputError(f"unknown encoder type {kind!r} (expected one of {', '.join(ENCODER_TYPES)})")


def _refuse_dense_options(kind: str, args: argparse.Namespace) -> None:
    given = [flag for flag, value in (("--pooling", args.pooling), ("--normalize", args.normalize),
                                      ("--prefixes", args.prefixes), ("--query-prefix", args.query_prefix),
                                      ("--document-prefix", args.document_prefix)) if value is not None]
    if given:
        raise InputError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to dense encoders only, "
                         f"not to --type {kind}")


def progress(args: argparse.Namespace) -> bool | None:
    return getattr(args, "progress", None)


def check_overwrite(index: str | Path, overwrite: bool) -> None:
    """An index directory that already holds an index is an error unless --overwrite was given."""
    if (Path(index) / "manifest.json").exists() and not overwrite:
        raise InputError(f"{index} already holds an index; pass --overwrite to replace it")


def add_output_options(p: argparse.ArgumentParser, default_name: str, required: bool = True) -> None:
    p.add_argument("--output", "-o", required=required, help="run file to write (.trec or .jsonl, .gz allowed)")
    p.add_argument("--format", dest="run_format", choices=["trec", "jsonl"],
                   help="run file format (default: from the file name; TREC unless it ends in .jsonl[.gz])")
    p.add_argument("--run-name", default=default_name, help=f"the run's tag (default {default_name})")


def write_run(run: Any, args: argparse.Namespace) -> None:
    """Write a run as TREC or JSONL (--format, else by the file name) with --run-name as its tag."""
    run.name = args.run_name
    jsonl = args.run_format == "jsonl" or (args.run_format is None
                                           and str(args.output).removesuffix(".gz").endswith(".jsonl"))
    if jsonl:
        run.write_jsonl(args.output)
    else:
        run.write_trec(args.output)


def report(message: str) -> None:
    """A status line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)


def rate(count: int, unit: str, seconds: float) -> str:
    """'300 queries in 1.23s (244 queries/s)'."""
    per_second = count / seconds if seconds > 0 else float("inf")
    return f"{count:,} {unit} in {seconds:.2f}s ({per_second:,.{1 if per_second < 10 else 0}f} {unit}/s)"


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
