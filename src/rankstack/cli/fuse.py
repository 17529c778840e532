"""`rankstack fuse`: fuse run files (reciprocal rank fusion, CombSUM / CombMNZ, weighted interpolation), as
`pyserini.fusion` does, with rankstack.pipeline.fusion.fuse."""

from __future__ import annotations

from rankstack.cli import common

METHODS = ("rrf", "combsum", "combmnz", "interpolation")


def register(sub) -> None:
    p = sub.add_parser("fuse", help="fuse run files: RRF, CombSUM, CombMNZ, weighted interpolation",
                       description="Fuse two or more run files query by query.")
    p.add_argument("runs", nargs="+", help="run files (TREC or JSONL)")
    p.add_argument("--method", choices=METHODS, default="rrf",
                   help="rrf (default): sum of w/(k + rank); combsum: sum of w * normalised score; combmnz: combsum "
                        "times the number of runs that found the document; interpolation: combsum with --weights")
    p.add_argument("--rrf-k", type=int, default=60, help="RRF's k (default 60)")
    p.add_argument("--norm", choices=["minmax", "zscore", "none"], default="minmax",
                   help="score normalisation per query and run for combsum/combmnz/interpolation (default minmax)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per run (default: 1 each)")
    p.add_argument("--depth", type=int, help="fuse only the top DEPTH hits of each run (Pyserini's --depth)")
    p.add_argument("-k", "--hits", dest="k", type=int, default=1000, help="hits per query written (default 1000)")
    common.add_output_options(p, "rankstack-fusion")
    p.set_defaults(func=run)


def run(args) -> None:
    from rankstack.data.run import Run
    from rankstack.errors import InputError
    from rankstack.pipeline.fusion import fuse

    if len(args.runs) < 2:
        raise InputError("fusion needs at least two run files")
    if args.method == "interpolation" and not args.weights:
        raise InputError("--method interpolation needs --weights, one per run (e.g. --weights 0.3 0.7)")
    runs = [Run.read(path) for path in args.runs]
    if args.depth:
        runs = [r.cut(args.depth) for r in runs]
    for path, r in zip(args.runs[1:], runs[1:]):
        if not any(q in r for q in runs[0]):
            raise InputError(f"{path} shares no query with {args.runs[0]}: runs for other queries cannot be fused")
    method = "combsum" if args.method == "interpolation" else args.method
    with common.Timer() as timer:
        fused = fuse(runs, method, args.weights, k=args.rrf_k, norm=args.norm).cut(args.k)
    common.write_run(fused, args)
    common.report(f"fused {len(runs)} runs: {common.rate(len(fused), 'queries', timer.seconds)}; run written to "
                  f"{args.output}")
