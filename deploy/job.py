"""A Ray job for rankstack: build a sharded index, or search one, on the cluster this runs in.

    python deploy/job.py build CORPUS INDEX [--kind bm25|sparse|dense] [--encoder MODEL] [--shards N]
                         [--part-size N] [--workers N] [--gpus-per-worker G]
    python deploy/job.py search INDEX --queries QUERIES [-k 100] [--replicas R] [-o run.trec]

On a cluster node (`ray start` ran there, or inside `ray job submit`) it joins that cluster (address "auto");
`--local N` starts a local cluster of N CPUs instead (a laptop).
"""

from __future__ import annotations

import argparse
import time

from rankstack import Queries, distributed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, metavar="CPUS", help="start a local Ray cluster of CPUS CPUs")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("corpus")
    b.add_argument("index")
    b.add_argument("--kind", default="bm25", choices=["bm25", "sparse", "dense"])
    b.add_argument("--encoder", help="model folder or hub id (sparse: SPLADE; dense: a sentence-transformers model)")
    b.add_argument("--shards", type=int, default=1)
    b.add_argument("--part-size", type=int)
    b.add_argument("--workers", type=int)
    b.add_argument("--gpus-per-worker", type=float, default=0)
    b.add_argument("--overwrite", action="store_true")
    s = commands.add_parser("search")
    s.add_argument("index")
    s.add_argument("--queries", required=True)
    s.add_argument("-k", type=int, default=100)
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument("-o", "--output")
    args = parser.parse_args()
    distributed.init(num_cpus=args.local) if args.local else distributed.init(address="auto")
    start = time.perf_counter()
    if args.command == "build":
        encoder = None
        if args.kind == "sparse":
            from rankstack.encoders import SpladeEncoder
            encoder = SpladeEncoder(args.encoder, progress=False)
        elif args.kind == "dense":
            encoder = args.encoder
        index = distributed.build(args.corpus, args.index, args.kind, encoder, shards=args.shards,
                                  part_size=args.part_size, workers=args.workers,
                                  gpus_per_worker=args.gpus_per_worker, overwrite=args.overwrite, progress=True)
        print(f"{index} in {time.perf_counter() - start:.1f} s")
    else:
        stage = distributed.open_sharded(args.index, k=args.k, replicas=args.replicas)
        queries = Queries.read(args.queries)
        run = stage(queries)
        took = time.perf_counter() - start
        print(f"{len(queries)} queries in {took:.1f} s ({len(queries) / took:.0f} q/s), partial: {run.partial}")
        if args.output:
            run.write_trec(args.output)


if __name__ == "__main__":
    main()
