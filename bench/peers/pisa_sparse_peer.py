"""PISA (pyterrier-pisa) on the learned-sparse vectors bench_sparse.py saved: run in the peers venv, one JSON line out.

The documents are indexed pre-tokenised with the integer impacts rankstack's own `impact_bits` index stores
(code = clip(rint(weight / scale), 1, 2**bits - 1), scale = the largest weight / (2**bits - 1)), so both engines
search the same quantised vectors. PISA's "quantized" scorer sums query weight x document impact, as rankstack
does, but takes integer query weights (pyterrier-pisa repeats a query term `weight` times): the float weights
are multiplied by a scale and truncated: each of "query_scales" is timed (pyterrier-pisa's default is 100; a
smaller scale drops a query's lightest terms, a larger one costs PISA more query processing). Each of PISA's
exact disjunctive algorithms runs all queries in one C++ retrieve call (no pandas), one thread, the fastest of
"repeats" runs; recall@10 against the exact float top 10 that bench_sparse.py computed.

    bench/.venv-peers/bin/python bench/peers/pisa_sparse_peer.py bench/out/sparse/pypi-seismic-peer.npz \
        '{"bits": 8, "repeats": 3, "query_scales": [10, 100, 1000], "workdir": "bench/out/sparse/pisa-8bit"}'
"""

import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ALGORITHMS = ("block_max_maxscore", "block_max_wand", "maxscore", "wand", "ranked_or")  # exact top-k


def main(path: str, options: str) -> None:
    from pyterrier_pisa import PisaIndex, _pisathon

    opts = json.loads(options)
    bits, repeats, k = int(opts["bits"]), int(opts.get("repeats", 3)), int(opts.get("k", 10))
    workdir = Path(opts["workdir"])
    z = np.load(path)
    ptr, idx, val = z["d_indptr"], z["d_indices"], z["d_data"].astype(np.float64)
    scale = val.max() / (2 ** bits - 1)
    codes = np.clip(np.rint(val / scale), 1, 2 ** bits - 1).astype(np.int64)

    def documents():
        for i in range(len(ptr) - 1):
            lo, hi = ptr[i], ptr[i + 1]
            yield {"docno": str(i), "toks": dict(zip(map(str, idx[lo:hi].tolist()), codes[lo:hi].tolist()))}

    shutil.rmtree(workdir, ignore_errors=True)
    index = PisaIndex(str(workdir), stemmer="none", threads=1)
    t = time.perf_counter()
    index.toks_indexer(scale=1.0).index(documents())
    index.quantized(num_results=k, threads=1)  # writes the block-max metadata of the quantized scorer
    build_s = time.perf_counter() - t

    qptr, qidx, qval = z["q_indptr"], z["q_indices"], z["q_data"].astype(np.float64)
    truth = z["truth"]
    rows = []
    for query_scale, algorithm in itertools.product(opts.get("query_scales", [100]), ALGORITHMS):
        weights = np.floor(qval * query_scale)
        queries = [(i, dict(zip(map(str, qidx[qptr[i]:qptr[i + 1]].tolist()), weights[qptr[i]:qptr[i + 1]].tolist())))
                   for i in range(len(qptr) - 1)]
        retriever = index.quantized(num_results=k, threads=1, query_algorithm=algorithm)
        shape = (len(queries) * k,)

        def retrieve():
            qidxs, docnos = np.empty(shape, np.int32), np.empty(shape, dtype=object)
            ranks, scores = np.empty(shape, np.int32), np.empty(shape, np.float32)
            size = _pisathon.retrieve(retriever._ctxt, algorithm, queries, k=k, threads=1, query_weighted=1,
                                      pretokenised=True, result_qidxs=qidxs, result_docnos=docnos,
                                      result_ranks=ranks, result_scores=scores)
            return qidxs[:size], docnos[:size]

        retrieve()  # warm-up
        seconds = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            qidxs, docnos = retrieve()
            seconds = min(seconds, time.perf_counter() - t)
        found = [set() for _ in queries]
        for q, d in zip(qidxs.tolist(), docnos.tolist()):
            found[q].add(int(d))
        recall = float(np.mean([len(found[i] & set(truth[i][truth[i] >= 0].tolist())) / max((truth[i] >= 0).sum(), 1)
                                for i in range(len(queries))]))
        rows.append({"algorithm": algorithm, "query_scale": query_scale, "recall": recall,
                     "qps": len(queries) / seconds})
    size = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file())
    print(json.dumps({"build_s": build_s, "bits": bits, "index_bytes": size, "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
