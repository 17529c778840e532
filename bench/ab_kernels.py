"""Kernel and query-path speed of this source tree against another, interleaved in one run (A/B on a busy machine).

(bench/ab_search.py compares whole builds and pipelines; this one times the kernels alone, the index's batch and
one-query paths, the public BM25.search and Seismic, over data both trees read.)

Each tree runs in its own worker process (PYTHONPATH set to it) that opens the same data once; the controller
then asks the workers in turn, alternating which goes first, for one timed pass of each workload, and reports
the fastest pass of each tree, their ratio (this tree over the other) and the ratio of their median passes. One
thread everywhere; `--cpu` times each pass by the worker thread's CPU time (steadier on a shared machine).

Workloads (all over pypi-summaries: 778,196 documents, the first --queries MS MARCO dev queries):
  kernels-<algorithm>-k<k>  SegmentSearcher.search_batch on bench_kernels.py's cached segment (\\w+ tokens, no
                            stopwords: long lists), queries as term ids: the kernels alone;
  index-k<k>                InvertedIndex.search on a rankstack BM25 index (--index), the analysed queries in one
                            batch: kernels, term lookup, per-segment merging;
  batch-k<k>                as bench_bm25's batch: analyse the query texts, InvertedIndex.search, external ids;
  one-k<k>                  one query per call: InvertedIndex.search([terms]) and external ids;
  public-k<k>               one query per call through the public API, BM25.search(text, k);
  seismic                   SeismicIndex.search on random Zipfian sparse vectors (100k documents, k=10);
  seismic-splade            SeismicIndex.search, k=10, on bench_sparse.py's index of SPLADE-tiny vectors
                            (--seismic-index, its queries --seismic-queries) with --seismic-knobs.

    PYTHONPATH=src python bench/ab_kernels.py --other /tmp/base/src --index /tmp/pypi-bm25 [--passes 5]

(`git archive <rev> src | tar -x -C /tmp/base` makes the other tree; `--index` is a BM25.build of
pypi-summaries' corpus.jsonl.gz with store=False; bench_kernels.py makes the kernels' cache.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "pypi-summaries"
QUERIES = DATA / "queries.msmarco-dev-small.jsonl"
KERNEL_CACHE = HERE / "out" / "bench_kernels" / "pypi"


# ---------------------------------------------------------------------------------------------------------------
# worker: runs in one tree


def _kernel_setup(cache: Path, n: int):
    import re
    from collections import Counter

    import numpy as np

    from rankstack.index.postings import term_df
    from rankstack.index.query import SegmentSearcher
    arrays = {p.stem: np.load(p, mmap_mode="r") for p in cache.glob("*.npy") if p.stem != "doc_lengths"}
    lengths = np.load(cache / "doc_lengths.npy")
    vocab = json.loads((cache / "vocab.json").read_text())
    token = re.compile(r"\w+")
    n_docs, df = len(lengths), term_df(arrays)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    queries = []
    for line in QUERIES.read_text().splitlines()[:n]:
        c = Counter(vocab[t] for t in token.findall(json.loads(line)["text"].lower()) if t in vocab)
        t = np.array(sorted(i for i in c if df[i] > 0), np.int32)
        queries.append((t, (idf[t] * np.array([c[i] for i in t.tolist()], np.float32)).astype(np.float32)))
    searcher = SegmentSearcher(arrays, lengths)
    kw = dict(k1=0.9, b=0.4, avgdl=float(lengths.mean()), threads=1)

    def run(algorithm: str, k: int):
        return lambda: searcher.search_batch(queries, k, algorithm=algorithm, **kw)
    return run


def _seismic_setup(tmp: Path):
    import numpy as np
    import scipy.sparse as sp

    from rankstack.index.search import SeismicParams, SparseQueries
    from rankstack.index.seismic import SeismicIndex
    rng = np.random.default_rng(0)

    def matrix(rows: int, nnz: int) -> sp.csr_matrix:
        cols = np.minimum(rng.zipf(1.2, size=(rows, nnz)), 30_000) - 1
        m = sp.csr_matrix((rng.random(cols.size).astype(np.float32) + 0.1,
                           (np.repeat(np.arange(rows), nnz), cols.ravel())), shape=(rows, 30_000))
        m.sum_duplicates()
        return m
    index = SeismicIndex.build(tmp / "seismic", matrix(100_000, 40), threads=1)
    queries = SparseQueries.over_columns(matrix(1000, 20), index.dim)
    params = SeismicParams(query_cut=8, heap_factor=0.7, threads=1)
    return lambda: index.search(queries, 10, params)


def seismic_splade_search(path, queries, query_cut: int, heap_factor: float, k: int = 10,
                          num_queries: int | None = None):
    """A call that searches a Seismic index (bench_sparse.py's) with the queries bench_sparse.py saved (a CSR
    matrix in an .npz), one thread; shared with profile_kernels.py."""
    import numpy as np
    import scipy.sparse as sp

    from rankstack.index.search import SeismicParams, SparseQueries
    from rankstack.index.seismic import SeismicIndex
    index = SeismicIndex(path)
    with np.load(queries) as z:
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    batch = SparseQueries.over_columns(matrix[:num_queries], index.dim)
    params = SeismicParams(query_cut=int(query_cut), heap_factor=heap_factor, threads=1)
    return lambda: index.search(batch, k, params)


def worker() -> None:
    import numba
    numba.set_num_threads(1)
    from collections import Counter

    setup = json.loads(sys.stdin.readline())
    n, ks = setup["queries"], setup["k"]
    texts = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()[:n]]
    loads: dict = {}
    if setup.get("index"):
        from rankstack.index.search import InvertedParams
        from rankstack.retrieve.bm25 import BM25
        bm25 = BM25(setup["index"], progress=False)
        index, ids, params = bm25.index, bm25.index.doc_ids, InvertedParams(threads=1)
        bags = [Counter(bm25.analyzer.analyze(t)) for t in texts]
        for k in ks:
            loads[f"index-k{k}"] = (lambda k: lambda: index.search(bags, k, params))(k)
            loads[f"batch-k{k}"] = (lambda k: lambda: [ids.take(h.docnos) for h in index.search(
                [Counter(bm25.analyzer.analyze(t)) for t in texts], k, params)])(k)
            loads[f"one-k{k}"] = (lambda k: lambda: [ids.take(index.search([b], k, params)[0].docnos)
                                                     for b in bags])(k)
            loads[f"public-k{k}"] = (lambda k: lambda: [bm25.search(t, k) for t in texts])(k)
    if setup.get("kernels"):
        run = _kernel_setup(Path(setup["kernels"]), n)
        for algorithm in setup["algorithms"]:
            for k in ks:
                loads[f"kernels-{algorithm}-k{k}"] = run(algorithm, k)
    if setup.get("seismic"):
        loads["seismic"] = _seismic_setup(Path(setup["seismic"]))
    if setup.get("seismic_index"):
        loads["seismic-splade"] = seismic_splade_search(setup["seismic_index"], setup["seismic_queries"],
                                                        *setup["seismic_knobs"])
    for call in loads.values():  # compile and warm up
        call()
    print(json.dumps(sorted(loads)), flush=True)
    clock = time.thread_time if setup.get("cpu") else time.perf_counter
    for line in sys.stdin:
        name = line.strip()
        t0 = clock()
        loads[name]()
        print(json.dumps(clock() - t0), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# controller


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--other", type=Path, help="the other tree's src folder")
    ap.add_argument("--index", type=Path, help="a rankstack BM25 index of pypi-summaries")
    ap.add_argument("--kernels", action="store_true", help="time the kernels on bench_kernels.py's cached segment")
    ap.add_argument("--kernel-cache", type=Path, default=KERNEL_CACHE)
    ap.add_argument("--algorithms", nargs="+", default=["maxscore", "bmw", "exhaustive"])
    ap.add_argument("--seismic", action="store_true", help="time Seismic on random vectors")
    ap.add_argument("--seismic-index", type=Path,
                    help="a Seismic index (bench_sparse.py's bench/out/sparse/pypi-seismic)")
    ap.add_argument("--seismic-queries", type=Path, default=HERE / "out" / "sparse" / "pypi-queries-1000.npz",
                    help="its queries, a CSR matrix saved by bench_sparse.py")
    ap.add_argument("--seismic-knobs", nargs=2, type=float, default=[5, 0.5], metavar=("QUERY_CUT", "HEAP_FACTOR"))
    ap.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="workload names to time (default: all)")
    ap.add_argument("--cpu", action="store_true", help="time each pass by the worker thread's CPU time, not the wall "
                    "clock (steadier while other jobs share the cores)")
    args = ap.parse_args()
    if args.worker:
        return worker()
    this = HERE.parent / "src"
    trees = {"this": this, "other": args.other}
    setup = {"queries": args.queries, "k": args.k, "index": str(args.index) if args.index else None,
             "kernels": str(args.kernel_cache) if args.kernels else None, "algorithms": args.algorithms,
             "cpu": args.cpu, "seismic_index": str(args.seismic_index) if args.seismic_index else None,
             "seismic_queries": str(args.seismic_queries),
             "seismic_knobs": [int(args.seismic_knobs[0]), args.seismic_knobs[1]]}
    procs = {}
    for name, tree in trees.items():
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()), "NUMBA_NUM_THREADS": "1"}
        tmp = Path(f"/tmp/ab_kernels-{os.getpid()}-{name}")
        tmp.mkdir(exist_ok=True)
        procs[name] = subprocess.Popen([sys.executable, __file__, "--worker"], env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs[name].stdin.write(json.dumps({**setup, "seismic": str(tmp) if args.seismic else None}) + "\n")
        procs[name].stdin.flush()
    loads = [json.loads(p.stdout.readline()) for p in procs.values()]
    names = [n for n in loads[0] if n in loads[1] and (not args.only or n in args.only)]
    times: dict = {(t, n): [] for t in trees for n in names}
    splade_queries = 0
    if args.seismic_index:
        import numpy as np
        with np.load(args.seismic_queries) as z:
            splade_queries = int(z["shape"][0])
    load_before = os.getloadavg()[0]
    for p in range(args.passes):
        for n in names:
            for t in (list(trees) if p % 2 == 0 else list(trees)[::-1]):
                procs[t].stdin.write(n + "\n")
                procs[t].stdin.flush()
                times[t, n].append(json.loads(procs[t].stdout.readline()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"best of {args.passes} interleaved passes ({'thread CPU time' if args.cpu else 'wall time'}), "
          f"{args.queries} queries, 1 thread; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")
    print("| workload | this q/s best | other q/s best | this / other (best) | this / other (median) |\n"
          "|---|---|---|---|---|")
    for n in names:
        q = {"seismic": 1000, "seismic-splade": splade_queries}.get(n, args.queries)
        a, b = q / min(times["this", n]), q / min(times["other", n])
        ratio = statistics.median(times["other", n]) / statistics.median(times["this", n])
        print(f"| {n} | {a:,.0f} | {b:,.0f} | {a / b:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
