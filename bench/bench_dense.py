"""Dense retrieval: rankstack's Dense / DenseRocchio / DenseIndex against sentence-transformers + FAISS directly.

quality: SciFact test, all-MiniLM-L6-v2. rankstack Dense (Flat) vs SentenceTransformer.encode + IndexFlatIP on the
  same model; nDCG@10 and R@100 of both (same evaluator), and DenseRocchio settings against plain dense. Document
  embeddings are encoded once and cached under bench/out/dense/ (the rankstack index there, resumable shards, and
  the sentence-transformers matrix); delete that folder to re-encode.
speed: search overhead of DenseIndex.search (-> Run) over faiss index.search + mapping rows to ids (numpy) on the
  FAISS object DenseIndex holds, same query matrix, one thread; random unit vectors (N x 384) for Flat, HNSW32 and IVF-Flat.
  Two figures: q/s of both sides, alternating rounds (noisy on a shared machine: Flat's FAISS time alone moves
  by tens of percent between rounds, and by 15% between two copies of one index file), and the overhead proper,
  measured inside the same calls: rankstack's time outside its FAISS search call over the time inside it.

    PYTHONPATH=src python bench/bench_dense.py quality
    PYTHONPATH=src python bench/bench_dense.py speed --n 100000 --queries 1000
Prints JSON lines; the last holds everything and goes to bench/out/dense.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "bench" / "out" / "dense"
MODEL = REPO.parent / "shared" / "models" / "sentence-transformers__all-MiniLM-L6-v2"
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def quality(args) -> dict:
    import faiss
    import torch
    from rankstack.data.run import Run
    from rankstack.datasets import load
    from rankstack.evaluate import evaluate
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.dense_prf import DenseRocchio

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    ds = load("beir/scifact/test")
    queries, qrels = ds.queries, ds.qrels
    measures = ["nDCG@10", "R@100"]
    out = {"model": str(args.model), "queries": len(queries)}

    index_dir = OUT / "scifact-minilm-flat"
    t = time.perf_counter()
    if (index_dir / "manifest.json").exists():
        dense = Dense(index_dir, args.model, k=100)
    else:
        dense = Dense.build(ds.corpus, index_dir, args.model, factory="Flat", k=100, shards=OUT / "scifact-shards")
        out["rankstack_build_s"] = round(time.perf_counter() - t, 1)
    ours = evaluate(dense(queries), qrels, measures).aggregate
    out["rankstack_dense"] = ours

    # the peer: sentence-transformers + exact FAISS inner product, same texts (title + " " + text)
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(args.model), device="cpu")
    emb_path, ids_path = OUT / "st_doc_emb.npy", OUT / "st_doc_ids.json"
    docs = list(ds.corpus)
    if not emb_path.exists():
        t = time.perf_counter()
        emb = st.encode([d.contents for d in docs], batch_size=32, convert_to_numpy=True)
        np.save(emb_path, emb.astype(np.float32))
        ids_path.write_text(json.dumps([d.id for d in docs]))
        out["st_encode_s"] = round(time.perf_counter() - t, 1)
    emb, doc_ids = np.load(emb_path), json.loads(ids_path.read_text())
    if doc_ids != [d.id for d in docs]:
        sys.exit(f"{ids_path} holds another corpus: delete {OUT} and rerun")
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    qids = list(queries)
    qv = st.encode([queries[q] for q in qids], batch_size=32, convert_to_numpy=True)
    scores, rows = flat.search(qv, 100)
    peer = Run.from_dict({q: {doc_ids[r]: float(s) for r, s in zip(rows[i], scores[i])} for i, q in enumerate(qids)})
    out["st_faiss_flat"] = evaluate(peer, qrels, measures).aggregate
    out["ndcg10_diff"] = round(abs(ours["nDCG@10"] - out["st_faiss_flat"]["nDCG@10"]), 5)
    ours_docs = dense.index.vectors(np.array([dense.index.position(d) for d in doc_ids]))
    out["max_abs_embedding_diff"] = float(np.abs(ours_docs - emb).max())
    print(json.dumps(out), flush=True)

    out["rocchio"] = []
    for fb_docs, alpha, beta, normalize in [(3, 1.0, 0.5, False), (3, 1.0, 1.0, False), (5, 1.0, 0.5, False),
                                            (3, 0.4, 0.6, True), (10, 1.0, 0.5, False)]:
        prf = DenseRocchio(dense, fb_docs=fb_docs, alpha=alpha, beta=beta, normalize=normalize)
        row = {"fb_docs": fb_docs, "alpha": alpha, "beta": beta, "normalize": normalize,
               **evaluate(prf(queries), qrels, measures).aggregate}
        out["rocchio"].append(row)
        print(json.dumps(row), flush=True)
    return out


class _TimedSearch:
    """A FAISS index whose search() adds its own seconds to `seconds` (rankstack calls it unchanged)."""

    def __init__(self, index):
        self.index, self.seconds = index, 0.0

    def search(self, *args, **kwargs):
        t = time.perf_counter()
        out = self.index.search(*args, **kwargs)
        self.seconds += time.perf_counter() - t
        return out

    def __getattr__(self, name):
        return getattr(self.index, name)


def _best_qps(fn, nq: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return nq / best


def speed(args) -> dict:
    import faiss
    from rankstack.index.dense import DenseIndex, DenseIndexWriter
    from rankstack.index.search import DenseParams

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = [f"doc{i}" for i in range(args.n)]
    out = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "threads": 1, "results": []}
    for factory, knobs, nq in [("Flat", {}, min(args.queries, 200)), ("HNSW32", {"ef_search": 64}, args.queries),
                               (f"IVF{args.nlist},Flat", {"nprobe": 16}, args.queries)]:
        path = OUT / f"speed-{args.n}-{args.dim}-{factory.replace(',', '_')}"
        if not (path / "manifest.json").exists():
            faiss.omp_set_num_threads(args.build_threads)
            t = time.perf_counter()
            with DenseIndexWriter(path, factory=factory, dim=args.dim, metric="ip") as w:
                w.add(ids, x)
            print(json.dumps({"built": factory, "s": round(time.perf_counter() - t, 1)}), flush=True)
        faiss.omp_set_num_threads(1)
        index = DenseIndex(path, gpu=False)
        raw = index.index  # the FAISS object rankstack itself searches: only rankstack's own work differs
        if "nprobe" in knobs:
            faiss.extract_index_ivf(raw).nprobe = knobs["nprobe"]
        if "ef_search" in knobs:
            faiss.downcast_index(raw).hnsw.efSearch = knobs["ef_search"]
        id_array = np.array(ids, dtype=object)
        qs = q[:nq]

        def peer():
            _, rows = raw.search(qs, args.k)
            return id_array[rows]

        def ours():
            return index.search(qs, args.k, DenseParams(**knobs))

        assert [list(r) for r in peer()[:5]] == [index.doc_ids.take(h.docnos) for h in ours()[:5]]  # same hits
        peer_qps = ours_qps = 0.0
        index.search_index = timed = _TimedSearch(index.search_index)
        total = 0.0
        for _ in range(args.rounds):  # alternate, keep each side's best: the machine is shared
            peer_qps = max(peer_qps, _best_qps(peer, nq, 1))
            t = time.perf_counter()
            ours()
            total += time.perf_counter() - t
            ours_qps = max(ours_qps, nq / (time.perf_counter() - t))
        row = {"factory": factory, **knobs, "queries": nq, "faiss_qps": round(peer_qps, 1),
               "rankstack_qps": round(ours_qps, 1), "qps_ratio": round(ours_qps / peer_qps, 4),
               "overhead_in_call": round(total / timed.seconds - 1, 5)}
        out["results"].append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    qa = sub.add_parser("quality")
    qa.add_argument("--model", type=Path, default=MODEL)
    qa.add_argument("--threads", type=int, default=2)
    sp = sub.add_parser("speed")
    sp.add_argument("--n", type=int, default=100_000)
    sp.add_argument("--dim", type=int, default=384)
    sp.add_argument("--queries", type=int, default=1000)
    sp.add_argument("--k", type=int, default=10)
    sp.add_argument("--nlist", type=int, default=256)
    sp.add_argument("--rounds", type=int, default=5)
    sp.add_argument("--build-threads", type=int, default=2)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = quality(args) if args.part == "quality" else speed(args)
    result["command"] = "PYTHONPATH=src python " + " ".join(["bench/bench_dense.py", *sys.argv[1:]])
    path = OUT.parent / f"dense_{args.part}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
