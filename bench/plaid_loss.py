"""Where PLAID loses exact MaxSim's top 10 on SciFact: residual compression, candidate generation, pruning.

Reuses bench_late.py's caches (document and query token vectors of all-MiniLM-L6-v2, no ColBERT weights here,
and the exact MaxSim scores): run bench_late.py once first. Per nbits it reports
- compression: top 10 by exact MaxSim over the decompressed vectors of every document (no pruning at all);
- per nprobe: the share of exact's top 10 among the candidates of the query tokens' top nprobe centroids;
- per nprobe:ncandidates: the share of exact's top 10 kept by centroid interaction, the overlap when the kept
  documents are rescored with the original vectors (pruning loss alone), and PLAID's actual overlap, nDCG@10
  and queries/s (decompressed rescoring: both losses).

With --rescore the indexes also store every token vector in float16 (PlaidIndex store_vectors="float16") and each
nprobe:ncandidates setting gets a second row: the full pipeline with exact rescoring (search(rescore=True): codes
for candidates and centroid interaction, the stored vectors for the final MaxSim), its overlap, nDCG@10, q/s (and
the ratio to decompressed rescoring, timed in the same run) and bytes per token (codes + residuals + stored
vectors). Its overlap should match "overlap_rescored_with_original_vectors" (the cache holds the same float16
vectors). --queries and --max-docs cut the run for a quick trial.

    NUMBA_NUM_THREADS=1 PYTHONPATH=src python bench/plaid_loss.py --threads 1 --num-centroids 4096 \
        --nbits 2 4 2:per_dimension 4:per_dimension --nprobe 4 16 --settings 16:1024
    NUMBA_NUM_THREADS=1 PYTHONPATH=src python bench/plaid_loss.py --threads 1 --num-centroids 4096 \
        --kmeans-sample 65536 --kmeans-iters 6 --nbits 2 4 --nprobe --settings 4:256 16:1024 \
        --no-compression-only --rescore
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_late  # noqa: E402  (sets the BLAS thread variables from --threads before NumPy loads)
import numpy as np  # noqa: E402


def overlap(tops: list[np.ndarray], exact_top: np.ndarray) -> float:
    return float(np.mean([len(set(t.tolist()) & set(e.tolist())) / 10 for t, e in zip(tops, exact_top)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(bench_late.REPO / "bench" / "out" / "late"), help="bench_late's cache")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-centroids", type=int, default=4096)
    p.add_argument("--kmeans-sample", type=int, default=1 << 17)
    p.add_argument("--kmeans-iters", type=int, default=8)
    p.add_argument("--nbits", nargs="+", default=["2", "4"],
                   help="nbits, or nbits:per_dimension for per-dimension buckets")
    p.add_argument("--nprobe", type=int, nargs="*", default=[4, 16])
    p.add_argument("--settings", nargs="*", default=["16:1024"], help="nprobe:ncandidates pairs")
    p.add_argument("--no-compression-only", action="store_true", help="skip the (slower) all-documents scoring")
    p.add_argument("--rescore", action="store_true",
                   help="store float16 vectors and also measure search with exact rescoring from them")
    p.add_argument("--queries", type=int, help="only the first N queries (a quick trial)")
    p.add_argument("--max-docs", type=int, help="only the first N documents (a quick trial)")
    args = p.parse_args()
    from rankstack import datasets
    from rankstack.data.run import IdList, Run
    from rankstack.encoders import load_shards
    from rankstack.evaluate import evaluate
    from rankstack.index.plaid import PlaidIndex, assign
    from rankstack.index.search import PlaidParams

    out = Path(args.out)
    work = out / ("loss" if args.max_docs is None else f"loss-{args.max_docs}docs")
    work.mkdir(exist_ok=True)
    data = datasets.load("beir/scifact/test")
    ids, qids = IdList(d.id for d in data.corpus), list(data.queries)[:args.queries]
    with np.load(out / "queries.npz") as z:
        queries = list(z["vectors"])
    docs = load_shards(out / "scifact-doc-tokens")[:args.max_docs]
    exact = bench_late.exact_scores_cached(queries, out)[:args.queries, :len(docs)]  # cached for all queries
    queries = queries[:args.queries]
    exact_top = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    tokens = sum(len(d) for d in docs)

    def ndcg(tops, scores) -> float:
        run = Run({q: (t, s) for q, t, s in zip(qids, tops, scores)}, ids, presorted=True)
        return round(evaluate(run, data.qrels, ["nDCG@10"]).value("nDCG@10"), 4)

    cpath = work / f"centroids-{args.num_centroids}-{args.kmeans_sample}-{args.kmeans_iters}.npy"
    centroids = np.load(cpath) if cpath.exists() else None
    codes = None
    for spec in args.nbits:
        nbits, buckets = int(spec.split(":")[0]), (spec.split(":") + ["global"])[1]
        t = time.perf_counter()
        index = PlaidIndex.create(work / f"plaid-{nbits}bit", {"dimension": docs[0].shape[1]}, docs, nbits=nbits,
                                  num_centroids=args.num_centroids, kmeans_sample=args.kmeans_sample,
                                  kmeans_iters=args.kmeans_iters, centroids=centroids, buckets=buckets,
                                  store_vectors="float16" if args.rescore else None, overwrite=True)
        if centroids is None:
            centroids = index.centroids
            np.save(cpath, centroids)
        if codes is None:
            codes = np.concatenate([assign(d, centroids) for d in np.array_split(np.concatenate(docs), 64)])
        index.add([str(i) for i in range(len(docs))], docs, codes)
        stored_bytes = sum((c.path / "vectors.npy").stat().st_size for c in index.chunks) if args.rescore else 0
        row = {"nbits": nbits, "buckets": buckets, "num_centroids": len(centroids),
               "build_s": round(time.perf_counter() - t, 1),
               "bytes_per_token": round((index.size_bytes() - stored_bytes) / tokens, 1)}
        if args.rescore:
            row["bytes_per_token_with_stored_vectors"] = round(index.size_bytes() / tokens, 1)
        if not args.no_compression_only:
            decompressed = index.vectors(np.arange(len(docs)))
            approx = bench_late.exact_scores(queries, decompressed)
            del decompressed
            tops = np.argsort(-approx, axis=1, kind="stable")[:, :10]
            row["compression_only"] = {"overlap@10": round(overlap(tops, exact_top), 4),
                                       "nDCG@10": ndcg(tops, np.take_along_axis(approx, tops, 1))}
        print(json.dumps(row), flush=True)
        for nprobe in args.nprobe:
            cands = [index.candidates(q, nprobe) for q in queries]
            print(json.dumps({"nbits": nbits, "nprobe": nprobe, "candidates_mean": round(float(np.mean(
                [len(c) for c in cands])), 1), "exact_top10_in_candidates": round(float(np.mean(
                    [np.isin(e, c).mean() for e, c in zip(exact_top, cands)])), 4)}), flush=True)
        index.search(queries[:1], 10, PlaidParams(rescore=args.rescore))  # compile the kernels outside the timings
        for setting in args.settings:
            nprobe, ncandidates = map(int, setting.split(":"))
            kept = [index.candidates(q, nprobe, ncandidates) for q in queries]
            exact_rescored = [c[np.argsort(-exact[i, c], kind="stable")[:10]] for i, c in enumerate(kept)]
            t = time.perf_counter()
            hits = index.search(queries, 10, PlaidParams(nprobe, ncandidates))
            qps = len(queries) / (time.perf_counter() - t)
            print(json.dumps({"nbits": nbits, "buckets": buckets, "nprobe": nprobe, "ncandidates": ncandidates,
                              "exact_top10_kept": round(float(np.mean([np.isin(e, c).mean()
                                                                       for e, c in zip(exact_top, kept)])), 4),
                              "overlap_rescored_with_original_vectors": round(overlap(exact_rescored, exact_top), 4),
                              "overlap@10": round(overlap([h.docnos for h in hits], exact_top), 4),
                              "nDCG@10": ndcg([h.docnos for h in hits], [h.scores for h in hits]),
                              "qps": round(qps, 2)}), flush=True)
            if args.rescore:
                t = time.perf_counter()
                rescored = index.search(queries, 10, PlaidParams(nprobe, ncandidates, rescore=True))
                rescored_qps = len(queries) / (time.perf_counter() - t)
                print(json.dumps({"nbits": nbits, "buckets": buckets, "nprobe": nprobe, "ncandidates": ncandidates,
                                  "rescore": "float16 stored vectors",
                                  "overlap@10": round(overlap([h.docnos for h in rescored], exact_top), 4),
                                  "nDCG@10": ndcg([h.docnos for h in rescored], [h.scores for h in rescored]),
                                  "qps": round(rescored_qps, 2),
                                  "qps_vs_decompressed": round(rescored_qps / qps, 2),
                                  "bytes_per_token": round(index.size_bytes() / tokens, 1),
                                  "codes_bytes_per_token": round((index.size_bytes() - stored_bytes) / tokens, 1),
                                  "stored_vectors_bytes_per_token": round(stored_bytes / tokens, 1)}), flush=True)
    print("reproduce: PYTHONPATH=src python bench/plaid_loss.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
