"""Learned sparse retrieval: rankstack against sentence-transformers (effectiveness) and pyseismic-lsr (speed).

scifact: SciFact test with SPLADE-tiny. rankstack's LearnedSparse (its SpladeEncoder, impact index, exact
MaxScore) against sentence-transformers' own SparseEncoder (MLMTransformer + SpladePooling("max")) with
exact scoring by a scipy sparse product, both encoding the corpus themselves. Prints nDCG@10 of each and
the difference (PEERS.md: 0.6436 at the full 512 tokens).

seismic: the first --docs pypi-summaries documents and --queries MS MARCO dev queries, encoded once by
rankstack's SpladeEncoder (cached, resumable, under bench/out/sparse/). rankstack's SeismicIndex and
pyseismic-lsr (run in the peers venv) are built with the same parameters on the same float vectors and
swept over (query_cut, heap_factor), one thread, each setting timed --repeats times (the fastest run counts,
for both); recall@10 is measured against the exact float top-10. rankstack stores document weights in 16 bits
(value_bits=16), pyseismic-lsr as float16. PISA (pyterrier-pisa, peers venv) indexes the same documents with
the integer impacts of rankstack's 8- and 16-bit indexes and runs each of its exact algorithms
(bench/peers/pisa_sparse_peer.py); its query weights are integers (--pisa-query-scales).
Prints queries/s of each at matched recall (the fastest setting reaching each target) and their ratio,
plus the exact engines' queries/s (the 16-bit inverted index in corpus order and reordered by recursive graph
bisection, each with MaxScore, Block-Max WAND, Block-Max Pruning and exhaustive; sparse matmul on CPU).

    PYTHONPATH=src /tmp/venv/bin/python bench/bench_sparse.py scifact
    PYTHONPATH=src /tmp/venv/bin/python bench/bench_sparse.py seismic --docs 100000 --queries 2000 \
        --peer-python bench/.venv-peers/bin/python
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "sparse"
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "src"))


def _command() -> str:
    return "PYTHONPATH=src " + shlex.join([sys.executable, "bench/bench_sparse.py", *sys.argv[1:]])


def _encoder(args):
    from rankstack.encoders import SpladeEncoder
    return SpladeEncoder(args.model, device="cpu", document_max_length=args.max_length, progress=False)


def _save_csr(path: Path, m: sp.csr_matrix) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape))
    os.replace(tmp, path)


def _load_csr(path: Path) -> sp.csr_matrix:
    with np.load(path) as z:
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))


# ---------------------------------------------------------------------------------------------
# SciFact: nDCG@10, rankstack vs sentence-transformers


def scifact(args) -> dict:
    import torch
    from rankstack.data.run import Run
    from rankstack.datasets import load
    from rankstack.evaluate import evaluate
    from rankstack.retrieve.sparse import LearnedSparse

    torch.set_num_threads(args.threads)
    ds = load("beir/scifact/test")
    queries = ds.queries.subset([q for q in ds.queries if q in ds.qrels])
    docs = list(ds.corpus)
    tag = f"L{args.max_length or 512}"
    out = {"docs": len(docs), "queries": len(queries), "max_length": args.max_length or 512}

    encoder = _encoder(args)
    for bits in (8, 16):
        t = time.perf_counter()
        stage = LearnedSparse.build(docs, OUT / f"scifact-{tag}-{bits}bit", encoder, impact_bits=bits, store=False,
                                    shards=OUT / f"scifact-{tag}-shards", overwrite=True, k=1000)
        out[f"rankstack_build_s_{bits}bit"] = time.perf_counter() - t  # encoding only the first time (cached)
        run = stage(queries)
        out[f"rankstack_ndcg10_{bits}bit"] = evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"]

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    mlm = MLMTransformer(str(args.model), max_seq_length=args.max_length or 512)
    st = SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu")
    parts = []
    for start in range(0, len(docs), 1000):  # cached in parts: an interrupted run resumes
        path = OUT / f"st-scifact-{tag}-{start:05d}.npz"
        if not path.exists():
            chunk = [d.contents for d in docs[start:start + 1000]]
            _save_csr(path, _coo_to_csr(st.encode_document(chunk, batch_size=32, convert_to_tensor=True)))
        parts.append(_load_csr(path))
    d = sp.vstack(parts, format="csr")
    qids = list(queries)
    q = _coo_to_csr(st.encode_query([queries[x] for x in qids], convert_to_tensor=True))
    scores = (q @ d.T).toarray()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :1000]
    run = Run.from_dict({qid: [(docs[j].id, float(scores[i, j])) for j in top[i] if scores[i, j] > 0]
                         for i, qid in enumerate(qids)})
    out["st_ndcg10"] = evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    for bits in (8, 16):
        out[f"difference_{bits}bit"] = out[f"rankstack_ndcg10_{bits}bit"] - out["st_ndcg10"]
    return out


def _coo_to_csr(t) -> sp.csr_matrix:
    t = t.coalesce().cpu()
    idx, val = t.indices().numpy(), t.values().float().numpy()
    return sp.csr_matrix((val, (idx[0], idx[1])), shape=tuple(t.shape))


# ---------------------------------------------------------------------------------------------
# Seismic vs pyseismic-lsr at matched recall


GRID = [(qc, hf) for qc in (3, 5, 8, 12, 20) for hf in (0.1, 0.3, 0.5, 0.7, 0.9)]
TARGETS = (0.85, 0.90, 0.95, 0.98, 0.99, 0.999)


def _pypi(args):
    from rankstack.data.corpus import Corpus
    from rankstack.encoders import encode_corpus_to_shards

    docs = list(itertools.islice(Corpus(args.data / "pypi-summaries" / "corpus.jsonl.gz"), args.docs))
    encoder = _encoder(args)
    shards = OUT / "pypi100k_shards"  # shard i holds docs 10,000 i ..: any --docs reuses them
    paths = encode_corpus_to_shards(encoder, [d.contents for d in docs], shards, 10_000)
    d = sp.vstack([_load_csr_npz(p) for p in paths], format="csr")
    qpath = OUT / f"pypi-queries-{args.queries}.npz"
    if not qpath.exists():
        lines = (args.data / "pypi-summaries" / "queries.msmarco-dev-small.jsonl").read_text().splitlines()
        texts = [json.loads(line)["text"] for line in lines[:args.queries]]
        _save_csr(qpath, encoder.encode_queries(texts))
    return docs, encoder, d, _load_csr(qpath)


def _load_csr_npz(path: Path) -> sp.csr_matrix:
    with np.load(path) as z:
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))


def _exact_top10(q: sp.csr_matrix, d: sp.csr_matrix) -> np.ndarray:
    truth = np.full((q.shape[0], 10), -1, np.int64)
    s = (q @ d.T).tocsr()
    for i in range(q.shape[0]):
        row, val = s.indices[s.indptr[i]:s.indptr[i + 1]], s.data[s.indptr[i]:s.indptr[i + 1]]
        best = row[np.lexsort((row, -val))[:10]]
        truth[i, :len(best)] = best
    return truth


def _recall(results, truth) -> float:
    return float(np.mean([len(set(r[0].tolist()) & set(t[t >= 0].tolist())) / max((t >= 0).sum(), 1)
                          for r, t in zip(results, truth)]))


def seismic(args) -> dict:
    import numba
    import torch
    from rankstack.index.seismic import SeismicIndex
    from rankstack.index.search import SeismicParams, SparseQueries
    from rankstack.index.sparse_gpu import SparseMatmulScorer
    from rankstack.retrieve.sparse import LearnedSparse

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    docs, encoder, d, q = _pypi(args)
    truth = _exact_top10(q, d)
    out = {"docs": d.shape[0], "queries": q.shape[0], "doc_nnz_mean": d.nnz / d.shape[0],
           "query_nnz_mean": q.nnz / q.shape[0]}

    position = {doc.id: row for row, doc in enumerate(docs)}
    # 16 bits in corpus order and reordered by recursive graph bisection; 8 bits, the impacts PISA gets below
    for order, reorder, bits in (("", False, 16), ("reordered_", True, 16), ("8bit_", False, 8)):
        t = time.perf_counter()
        stage = LearnedSparse.build(docs, OUT / f"pypi-{order}idx", encoder, impact_bits=bits, store=False,
                                    overwrite=True, shards=OUT / "pypi100k_shards", k=10, threads=1, reorder=reorder)
        out[f"exact_{order}build_s"] = time.perf_counter() - t
        stage.search_vectors(q[:50], 10)
        for algorithm in ("maxscore", "bmw", "bmp", "exhaustive"):
            stage.algorithm = algorithm
            stage.search_vectors(q[:1], 10)  # Block-Max Pruning builds its bounds at first use
            seconds = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = stage.search_vectors(q, 10)
                seconds.append(time.perf_counter() - t)
            out[f"exact_{order}{algorithm}_qps"] = q.shape[0] / min(seconds)
            rows = [(np.array([position[i] for i in stage.index.doc_ids.take(h.docnos)], np.int64), h.scores)
                    for h in res]  # doc numbers (a reordered index's own) to corpus rows, as `truth` counts
            out[f"exact_{order}{algorithm}_recall"] = _recall(rows, truth)  # < 1 only by 16-bit quantisation
    matmul = SparseMatmulScorer(d, device="cpu", memory_mb=256)
    matmul.search(SparseQueries.over_columns(q[:50], matmul.dim), 10)
    t = time.perf_counter()
    res = matmul.search(SparseQueries.over_columns(q, matmul.dim), 10)
    out["exact_matmul_qps"] = q.shape[0] / (time.perf_counter() - t)
    out["exact_matmul_recall"] = _recall(res, truth)

    build = {"n_postings": args.n_postings, "centroid_fraction": 0.1, "summary_energy": 0.4}
    t = time.perf_counter()
    index = SeismicIndex.build(OUT / "pypi-seismic", d, threads=1, **build)
    out["rankstack_seismic_build_s"] = time.perf_counter() - t  # includes numba compilation on a cold cache
    ours = []
    for query_cut, heap_factor in GRID:
        knobs = SeismicParams(query_cut, heap_factor, threads=1)
        index.search(SparseQueries.over_columns(q[:20], index.dim), 10, knobs)
        seconds = []
        for _ in range(args.repeats):  # the fastest of the repeats: the least disturbed by other processes
            t = time.perf_counter()
            res = index.search(SparseQueries.over_columns(q, index.dim), 10, knobs)
            seconds.append(time.perf_counter() - t)
        ours.append({"query_cut": query_cut, "heap_factor": heap_factor, "recall": _recall(res, truth),
                     "qps": q.shape[0] / min(seconds)})
    out["rankstack_seismic"] = ours

    peer_input = OUT / "pypi-seismic-peer.npz"
    np.savez(peer_input, d_indptr=d.indptr, d_indices=d.indices, d_data=d.data, q_indptr=q.indptr,
             q_indices=q.indices, q_data=q.data, truth=truth, dim=np.int64(d.shape[1]))
    grid = json.dumps({"build": build, "search": GRID, "repeats": args.repeats})
    proc = subprocess.run([str(args.peer_python), str(REPO / "bench" / "peers" / "seismic_peer.py"), str(peer_input),
                           grid], capture_output=True, text=True, env={**os.environ, "RAYON_NUM_THREADS": "1"})
    if proc.returncode:
        raise SystemExit(f"pyseismic-lsr failed:\n{proc.stderr[-3000:]}")
    peer = json.loads(proc.stdout.strip().splitlines()[-1])
    out["pyseismic_build_s"], out["pyseismic"] = peer["build_s"], peer["rows"]
    for bits in (8, 16):  # PISA on the same quantised document impacts as rankstack's `impact_bits` index
        options = json.dumps({"bits": bits, "repeats": args.repeats, "query_scales": args.pisa_query_scales,
                              "workdir": str(OUT / f"pisa-{bits}bit")})
        proc = subprocess.run([str(args.peer_python), str(REPO / "bench" / "peers" / "pisa_sparse_peer.py"),
                               str(peer_input), options], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"PISA failed:\n{proc.stderr[-3000:]}")
        out[f"pisa_{bits}bit"] = json.loads(proc.stdout.strip().splitlines()[-1])

    out["matched_recall"] = _matched(out)
    return out


def _matched(out: dict) -> list[dict]:
    """The fastest setting of each engine reaching each recall@10 target (Seismic and the exact kernels for
    rankstack), and rankstack's ratio to each peer."""
    exact = [{"algorithm": key[len("exact_"):-len("_qps")], "recall": out[key[:-len("qps")] + "recall"], "qps": v}
             for key, v in out.items() if key.startswith("exact_") and key.endswith("_qps")]
    engines = {"rankstack": [{"seismic": [r["query_cut"], r["heap_factor"]], **r} for r in out["rankstack_seismic"]]
               + exact,
               "pyseismic": [{"seismic": [r["query_cut"], r["heap_factor"]], **r} for r in out["pyseismic"]],
               "pisa": [{**r, "bits": out[f"pisa_{bits}bit"]["bits"]} for bits in (8, 16)
                        for r in out[f"pisa_{bits}bit"]["rows"]]}
    matched = []
    for target in TARGETS:
        row: dict = {"target_recall": target}
        for name, rows in engines.items():
            ok = [r for r in rows if r["recall"] >= target]
            best = max(ok, key=lambda r: r["qps"]) if ok else None
            row[f"{name}_qps"] = best and best["qps"]
            row[f"{name}_setting"] = best and {k: v for k, v in best.items()
                                               if k not in ("qps", "query_cut", "heap_factor")}
        for peer in ("pyseismic", "pisa"):
            if row["rankstack_qps"] and row[f"{peer}_qps"]:
                row[f"ratio_rankstack_over_{peer}"] = row["rankstack_qps"] / row[f"{peer}_qps"]
        matched.append(row)
    return matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["scifact", "seismic"])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "splade-tiny-msmarco")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    parser.add_argument("--max-length", type=int, default=None, help="document tokens (default: the model's 512)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for encoding (scifact)")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--n-postings", type=int, default=3500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per Seismic setting (the fastest counts)")
    parser.add_argument("--pisa-query-scales", type=float, nargs="+", default=[10, 100, 1000],
                        help="PISA takes integer query weights (pyterrier-pisa repeats a term weight times): "
                             "weights are multiplied by each scale and truncated (pyterrier-pisa's default 100)")
    parser.add_argument("--peer-python", type=Path, default=REPO / "bench" / ".venv-peers" / "bin" / "python")
    args = parser.parse_args()
    if min(args.pisa_query_scales) <= 0:
        parser.error("--pisa-query-scales must be positive")
    OUT.mkdir(parents=True, exist_ok=True)
    result = scifact(args) if args.task == "scifact" else seismic(args)
    result["command"] = _command()
    (OUT / f"{args.task}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
