"""Late interaction on SciFact test: PLAID search (2- and 4-bit residuals) against exact brute-force MaxSim.

No trained ColBERT weights are available here, so the token vectors are all-MiniLM-L6-v2's last layer
(rankstack's MultiVectorEncoder with no projection, L2-normalised per token, [Q]/[D] markers, queries padded with
[MASK] to 32 tokens, documents cut at 180 tokens, punctuation dropped). Absolute nDCG is therefore not ColBERT's;
the benchmark measures how faithfully and how fast PLAID reproduces exact MaxSim over the same vectors.

Exact = for every query, MaxSim against the full-precision token vectors (float16 cache, computed in float32) of
all 5,183 documents. PLAID = rankstack.index.plaid over the same vectors (k-means centroids, residuals compressed
to 2 or 4 bits, candidates from each query token's top nprobe centroids, centroid interaction keeping
ncandidates, exact MaxSim over the decompressed candidates). Reported per setting: overlap of the top 10 with
exact's top 10, nDCG@10, queries/s (search only: query vectors are encoded beforehand, as for exact), index
size and bytes per token.

Peers (best of --repeat passes, taking turns with rankstack setting by setting, one query per call, overlap@10
with exact and nDCG@10 over the same document and query vectors): colbert-ai's PLAID (bench/peers/colbert_plaid.py
in the neural peers venv, bench/peers/setup_neural.sh; it compresses with rankstack's centroids and buckets) and
fast-plaid (bench/peers/fast_plaid_worker.py in bench/.venv-fast-plaid, bench/peers/setup_fast_plaid.sh; its own
k-means and buckets, as many centroids). A peer whose virtualenv is missing is skipped with a message.

Document token vectors are encoded once (several minutes on 2 cores) and cached as float16 shards in
bench/out/late/ (git-ignored); later runs reuse them.

    PYTHONPATH=src python bench/bench_late.py
    PYTHONPATH=src python bench/bench_late.py --threads 2 --num-centroids 4096 --settings 4:256 16:1024

Where the top 10 is lost (bench/plaid_loss.py): candidate generation loses nothing (nprobe 4 already lists ~4,500
of the 5,183 documents), centroid interaction keeps 96% (256 kept) to 99% (1,024 kept) of exact's top 10, and
residual compression loses the rest: MiniLM's token vectors are not trained for it, so 2 bits (overlap 0.85 with no
pruning at all) and 4 bits (0.94) cannot reach 95%; 8-bit residuals with per-dimension buckets (0.989 with no
pruning; 397 bytes per token, half of float16) can. The setting that reaches >= 95% overlap (1 thread; measured
with plaid_loss.py, which reads this script's caches: overlap 0.957, nDCG@10 0.649, 5.6 q/s at 4:256; 0.982,
0.643, 1.6 q/s at 16:1024):

    NUMBA_NUM_THREADS=1 PYTHONPATH=src python bench/plaid_loss.py --threads 1 --num-centroids 4096 \
        --kmeans-sample 65536 --kmeans-iters 6 --nbits 8:per_dimension --nprobe --settings 4:256 16:1024
    NUMBA_NUM_THREADS=1 PYTHONPATH=src python bench/bench_late.py --threads 1 --nbits 8 --buckets per_dimension \
        --num-centroids 4096 --kmeans-sample 65536 --kmeans-iters 6 --settings 4:256 16:1024
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# BLAS threads as --threads says (set before NumPy loads): both exact and PLAID scoring run under the same setting.
_THREADS = next((a.split("=")[1] if "=" in a else sys.argv[i + 2] for i, a in enumerate(sys.argv[1:])
                 if a.startswith("--threads")), "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "models/sentence-transformers__all-MiniLM-L6-v2"


def _model_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    for root in (REPO.parent / "shared", REPO / "shared"):
        if (root / MODEL).is_dir():
            return root / MODEL
    sys.exit(f"{MODEL} not found; pass --model")


class _Float16:
    """Wraps an encoder so that shards hold float16 token vectors (half the disk and memory)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode_documents(self, texts):
        return [v.astype(np.float16) for v in self.encoder.encode_documents(texts)]

    def model_info(self):
        return {**self.encoder.model_info(), "cache_dtype": "float16"}


def document_tokens(encoder, docs, out: Path) -> list[np.ndarray]:
    from rankstack.encoders import encode_corpus_to_shards, load_shards

    t = time.perf_counter()
    encode_corpus_to_shards(_Float16(encoder), [d.contents for d in docs], out / "scifact-doc-tokens", shard_size=256,
                            on_shard=lambda i, p: print(f"  encoded shard {i} ({time.perf_counter() - t:.0f} s)",
                                                        file=sys.stderr))
    return load_shards(out / "scifact-doc-tokens")


def exact_scores(queries: list[np.ndarray], docs: list[np.ndarray], block_tokens: int = 4096) -> np.ndarray:
    """[n_queries, n_docs] exact MaxSim (float32), all queries at once against blocks of whole documents."""
    q = np.concatenate(queries).astype(np.float32)  # [n_queries * query_length, dim]
    nq, qlen = len(queries), len(queries[0])
    out = np.empty((nq, len(docs)), np.float32)
    start = 0
    while start < len(docs):
        end, tokens = start, 0
        while end < len(docs) and (tokens == 0 or tokens + len(docs[end]) <= block_tokens):
            tokens += len(docs[end])
            end += 1
        block = np.concatenate(docs[start:end]).astype(np.float32)
        bounds = np.concatenate([[0], np.cumsum([len(d) for d in docs[start:end]])])
        sims = q @ block.T  # [query tokens, block tokens]
        # Max over each document's tokens, per query token; then the sum over each query's tokens.
        maxes = np.maximum.reduceat(sims, bounds[:-1], axis=1)  # [query tokens, docs]
        out[:, start:end] = maxes.reshape(nq, qlen, end - start).sum(1)
        start = end
    return out


def exact_scores_cached(queries: list[np.ndarray], out: Path) -> np.ndarray:
    """Exact MaxSim against every shard of cached document vectors, each shard's scores cached beside it (so
    that this can run while the documents are still being encoded: it scores the shards written so far)."""
    key = hashlib.sha256(np.concatenate(queries).tobytes()).hexdigest()[:12]
    parts = []
    for shard in sorted((out / "scifact-doc-tokens").glob("shard-*.npz")):
        cached = out / "exact" / f"{key}-{shard.stem}.npy"
        if not cached.exists():
            with np.load(shard) as z:  # a multi-vector shard: concatenated vectors and per-text lengths
                docs = np.split(z["vectors"], np.cumsum(z["lengths"])[:-1])
            cached.parent.mkdir(exist_ok=True)
            np.save(cached, exact_scores(queries, docs))
        parts.append(np.load(cached))
    return np.concatenate(parts, axis=1)


def query_tokens(encoder, queries, out: Path) -> list[np.ndarray]:
    """Query token vectors, cached (with the encoder's model_info) in out/queries.npz."""
    path = out / "queries.npz"
    info = json.dumps(encoder.model_info(), sort_keys=True)
    qids = list(queries)
    if path.exists():
        with np.load(path) as z:
            if str(z["info"]) == info and z["qids"].tolist() == qids:
                return list(z["vectors"])
    vectors = encoder.encode_queries([queries[q] for q in qids])
    np.savez(path, info=np.str_(info), qids=np.array(qids), vectors=np.stack(vectors))
    return vectors


def plaid_params(setting: str):
    """PlaidParams from "nprobe:ncandidates[:ndecompress[:centroid_threshold]]" (an empty field: None)."""
    from rankstack.index.search import PlaidParams

    fields = (setting.split(":") + ["", ""])[:4]
    nprobe, ncandidates = int(fields[0]), int(fields[1])
    return PlaidParams(nprobe, ncandidates, centroid_threshold=float(fields[3]) if fields[3] else None,
                       ndecompress=int(fields[2]) if fields[2] else None)


def time_query_encoding(encoder, model_dir, texts: list[str], int8: bool) -> dict:
    """Queries encoded per second: all in one call, and one query per call (as a service answers); with `int8`
    also by the same encoder in dtype="int8"."""
    from rankstack.encoders import MultiVectorEncoder

    encoders = {"fp32": encoder}
    if int8:
        encoders["int8"] = MultiVectorEncoder(model_dir, projection=None, device="cpu", dtype="int8", progress=False)
    out = {}
    for name, enc in encoders.items():
        enc.encode_queries(texts[:4])
        t = time.perf_counter()
        enc.encode_queries(texts)
        batch = time.perf_counter() - t
        t = time.perf_counter()
        for text in texts:
            enc.encode_queries([text])
        single = time.perf_counter() - t
        out[name] = {"batch": round(len(texts) / batch, 1), "one_per_call": round(len(texts) / single, 1)}
    return out


# PLAID peers, each a JSON-lines worker (bench/peers/) in its own virtualenv: name -> (worker script, the script
# that makes its virtualenv, what a setting means).
PEERS = {"colbert-ai": ("colbert_plaid.py", "setup_neural.sh",
                        "ncells:centroid_score_threshold:ndocs (it decompresses ndocs/4)"),
         "fast-plaid": ("fast_plaid_worker.py", "setup_fast_plaid.sh",
                        "n_ivf_probe:n_full_scores (it decompresses n_full_scores/4)")}


def available_peers(args) -> dict[str, tuple[str, list[str]]]:
    """The peers to compare with: name -> (python, settings); one whose virtualenv is missing is skipped with a
    message, one whose python is 'none' left out."""
    wanted = {"colbert-ai": (args.peers_python, args.colbert_settings),
              "fast-plaid": (args.fast_plaid_python, args.fast_plaid_settings)}
    peers = {}
    for name, (python, settings) in wanted.items():
        if python == "none":
            continue
        if Path(python).exists():
            peers[name] = (python, settings)
        else:
            print(f"skipping {name}: no {python} (make it with bash bench/peers/{PEERS[name][1]})", file=sys.stderr)
    return peers


def compare_peers(index, doc_vectors, query_vectors, exact_top, ndcg_of, peers: dict, args, out: Path) -> dict:
    """rankstack's PLAID search against each peer's on the same document and query vectors (colbert-ai compresses
    them with rankstack's centroids and buckets, so both hold the same codes; fast-plaid trains its own k-means
    and buckets, with as many centroids), timings interleaved setting by setting, best of --repeat passes:
    overlap of each top 10 with exact MaxSim's, nDCG@10 (`ndcg_of(tops)`), queries/s (search only, one query per
    call)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers.worker import JsonWorker

    inputs = out / "peer-inputs.npz"
    np.savez(inputs, centroids=index.centroids, cutoffs=np.asarray(index.cutoffs), weights=np.asarray(index.weights),
             nbits=np.int64(index.nbits), vectors=np.concatenate(doc_vectors).astype(np.float16),
             doclens=np.array([len(v) for v in doc_vectors], np.int64), queries=np.stack(query_vectors))
    workers, ready, rows = {}, {}, {}

    def quality(tops) -> dict:
        return {"overlap@10": round(float(np.mean([len(set(map(int, t)) & set(e.tolist())) / 10
                                                   for t, e in zip(tops, exact_top)])), 4),
                "nDCG@10": round(ndcg_of(tops), 4)}

    def record(key, tops, wall: float, cpu: float) -> None:
        row = rows.setdefault(key, {**quality(tops), "wall_s": wall, "cpu_s": cpu})
        row["wall_s"], row["cpu_s"] = min(row["wall_s"], wall), min(row["cpu_s"], cpu)

    try:
        for name, (python, _) in peers.items():
            work = out / name
            work.mkdir(parents=True, exist_ok=True)
            workers[name] = JsonWorker([python, str(Path(__file__).resolve().parent / "peers" / PEERS[name][0]),
                                        "--inputs", str(inputs), "--work", str(work), "--threads", str(args.threads)],
                                       {"OMP_NUM_THREADS": str(args.threads)})
            ready[name] = workers[name].first
            print(json.dumps({name: ready[name]}), file=sys.stderr)
        for _ in range(args.repeat):
            for setting in args.settings:
                params = plaid_params(setting)
                t, c = time.perf_counter(), time.process_time()
                hits = [index.search([q], 10, params)[0] for q in query_vectors]
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                record(("rankstack", setting), [h.docnos for h in hits], wall, cpu)
            for name, (_, settings) in peers.items():
                for setting in settings:
                    reply = workers[name].ask({"run": setting.split(":"), "k": 10})
                    record((name, setting), reply["top"], reply["wall_s"], reply["cpu_s"])
    finally:
        for worker in workers.values():
            worker.close()
    n = len(query_vectors)
    table = [{"engine": engine, "setting": setting, "overlap@10": r["overlap@10"], "nDCG@10": r["nDCG@10"],
              "qps": round(n / r["wall_s"], 1), "qps_cpu_time": round(n / r["cpu_s"], 1)}
             for (engine, setting), r in rows.items()]
    for row in table:
        print(json.dumps(row), file=sys.stderr)
    return {"nbits": index.nbits, "load_average": [round(x, 2) for x in os.getloadavg()],
            "peers": {name: {k: (round(v, 1) if k == "build_s" else v) for k, v in r.items() if k != "ready"}
                      for name, r in ready.items()},
            "rows": table,
            "settings": "; ".join(["rankstack nprobe:ncandidates[:ndecompress[:centroid_threshold]]"]
                                  + [f"{name} {PEERS[name][2]}" for name in peers])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="all-MiniLM-L6-v2 folder (default: the shared one)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "late"))
    p.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    p.add_argument("--num-centroids", type=int, default=1024)
    p.add_argument("--kmeans-sample", type=int, default=1 << 15)
    p.add_argument("--kmeans-iters", type=int, default=8)
    p.add_argument("--nbits", type=int, nargs="+", default=[2, 4])
    p.add_argument("--buckets", default="global", choices=["global", "per_dimension"],
                   help="residual bucket quantiles over all dimensions (ColBERTv2) or per dimension")
    p.add_argument("--max-docs", type=int, help="only the first N documents (a quick trial of the script)")
    p.add_argument("--exact-only", action="store_true",
                   help="only score the document shards encoded so far exactly (can run beside the encoding)")
    p.add_argument("--settings", nargs="+", default=["2:128", "4:256", "8:512"],
                   help="nprobe:ncandidates pairs, or nprobe:ncandidates:ndecompress:centroid_threshold")
    p.add_argument("--peers-python", default=str(REPO / "bench" / ".venv-neural-peers" / "bin" / "python"),
                   help="python of the neural peers venv (bench/peers/setup_neural.sh) for colbert-ai's PLAID; "
                        "'none' leaves it out")
    p.add_argument("--colbert-settings", nargs="+", default=["1:0.5:256", "2:0.45:1024", "4:0.4:4096"],
                   help="colbert-ai ncells:centroid_score_threshold:ndocs (its defaults for k=10, 100, 1000)")
    p.add_argument("--fast-plaid-python", default=str(REPO / "bench" / ".venv-fast-plaid" / "bin" / "python"),
                   help="python of the fast-plaid venv (bench/peers/setup_fast_plaid.sh); 'none' leaves it out")
    p.add_argument("--fast-plaid-settings", nargs="+", default=["2:256", "4:1024", "8:4096", "16:8192"],
                   help="fast-plaid n_ivf_probe:n_full_scores (8:4096: its defaults; it decompresses a quarter)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved timing passes with the peers; best counts")
    p.add_argument("--query-encoding", action="store_true",
                   help="also time query encoding (one call for all queries and one call per query; fp32, int8)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from rankstack import datasets
    from rankstack.data.run import IdList, Run
    from rankstack.encoders import MultiVectorEncoder
    from rankstack.evaluate import evaluate
    from rankstack.index.plaid import PlaidIndex

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.load("beir/scifact/test")
    docs, queries, qrels = list(data.corpus)[:args.max_docs], data.queries, data.qrels
    encoder = MultiVectorEncoder(_model_dir(args.model), projection=None, device="cpu", progress=False)
    qids = list(queries)
    query_encoding = time_query_encoding(encoder, _model_dir(args.model), [queries[q] for q in qids[:64]],
                                         args.query_encoding)
    query_vectors = query_tokens(encoder, queries, out)
    if args.exact_only:
        print(exact_scores_cached(query_vectors, out).shape)
        return
    doc_vectors = document_tokens(encoder, docs, out)
    num_tokens = sum(len(v) for v in doc_vectors)
    ids = IdList(d.id for d in docs)

    def ndcg(results: dict, doc_ids) -> float:
        return evaluate(Run(results, doc_ids, presorted=True), qrels, ["nDCG@10"]).value("nDCG@10")

    def ndcg_of(tops) -> float:
        """nDCG@10 of ranked document numbers (one list per query)."""
        return ndcg({q: (t, -np.arange(len(t), dtype=np.float32)) for q, t in zip(qids, tops)}, ids)

    t = time.perf_counter()
    exact_scores(query_vectors[:10], doc_vectors)  # timed on 10 queries; the scores of all come from the cache
    exact_qps = 10 / (time.perf_counter() - t)
    exact = exact_scores_cached(query_vectors, out)[:, :len(docs)]  # the cache may hold more documents (shards)
    exact_top = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    report = {"data": f"beir/scifact/test ({len(docs)} docs, {len(qids)} queries)",
              "vectors": "all-MiniLM-L6-v2 token vectors, no projection, normalised (no ColBERT weights here); "
                         "documents cut at 180 tokens, queries 32 tokens with [MASK] augmentation",
              "threads": args.threads, "documents": len(docs), "tokens": num_tokens,
              "query_encoding_qps": query_encoding,
              "exact": {"nDCG@10": round(ndcg({q: (exact_top[i], exact[i, exact_top[i]]) for i, q in enumerate(qids)},
                                              ids), 4),
                        "qps": round(exact_qps, 2), "float16_vectors_bytes": num_tokens * encoder.dimension * 2,
                        "bytes_per_token": encoder.dimension * 2},
              "plaid": []}
    print(json.dumps({k: v for k, v in report.items() if k != "plaid"}), file=sys.stderr)
    peers = available_peers(args)
    centroids = codes = None  # trained and assigned once, shared by the indexes of every nbits
    for nbits in args.nbits:
        path = out / f"plaid-{nbits}bit"
        t = time.perf_counter()
        index = PlaidIndex.create(path, encoder.model_info(), doc_vectors, nbits=nbits,
                                  num_centroids=args.num_centroids, kmeans_sample=args.kmeans_sample,
                                  kmeans_iters=args.kmeans_iters, centroids=centroids, buckets=args.buckets,
                                  overwrite=True)
        centroids = index.centroids
        trained = time.perf_counter() - t
        index.add([d.id for d in docs], doc_vectors, codes)
        codes = np.array(index.chunks[0].codes)
        built = time.perf_counter() - t
        size = index.size_bytes()
        decompressed = index.vectors(np.arange(len(docs)))
        cosine = float(np.mean(np.einsum("ij,ij->i", np.concatenate(decompressed),
                                         np.concatenate(doc_vectors).astype(np.float32))))
        del decompressed
        index.search(query_vectors[:1], 10)  # compile the kernels outside the timings
        if peers:
            report.setdefault("vs_peers", []).append(
                compare_peers(index, doc_vectors, query_vectors, exact_top, ndcg_of, peers, args, out))
        for setting in args.settings:
            params = plaid_params(setting)
            nprobe, ncandidates = params.nprobe, params.ncandidates
            t = time.perf_counter()
            hits = index.search(query_vectors, 10, params)
            qps = len(qids) / (time.perf_counter() - t)
            # Index doc numbers follow the corpus order here (one chunk, added in order).
            overlap = np.mean([len(set(h.docnos.tolist()) & set(exact_top[i].tolist())) / 10
                               for i, h in enumerate(hits)])
            row = {"nbits": nbits, "buckets": args.buckets, "nprobe": nprobe, "ncandidates": ncandidates,
                   "ndecompress": params.ndecompress, "centroid_threshold": params.centroid_threshold,
                   "overlap@10": round(float(overlap), 4),
                   "nDCG@10": round(ndcg(dict(zip(qids, hits)), index.doc_ids), 4),
                   "qps": round(qps, 1), "qps_vs_exact": round(qps / exact_qps, 1),
                   "index_bytes": size, "bytes_per_token": round(size / num_tokens, 1),
                   "num_centroids": len(index.centroids), "mean_cosine_to_original": round(cosine, 4),
                   "train_s (k-means and assignment: first nbits only)": round(trained, 1), "build_s": round(built, 1)}
            report["plaid"].append(row)
            print(json.dumps(row), file=sys.stderr)
        shutil.rmtree(path)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print("reproduce: PYTHONPATH=src python bench/bench_late.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
