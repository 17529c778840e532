"""Micro benchmark of the BM25 top-k kernels on one segment.

Indexes ``corpus.jsonl.gz`` of the PyPI-summaries collection (``text`` field, lowercased, ``\\w+``
tokens) or, when it is not readable, a synthetic Zipfian collection; then times 2,000 queries
(``queries.msmarco-dev-small.jsonl``, tokenized the same way; synthetic otherwise), one thread,
for exhaustive / MaxScore / BMW at k=10 and k=1000. Every pruned result is checked against the
exhaustive one. The encoded segment is cached under bench/out/.

    PYTHONPATH=src python bench/bench_kernels.py [--data DIR] [--queries 2000] [--k1 1.2 --b 0.75]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import numba
import numpy as np

from rankstack.index.postings import encode_postings, postings_nbytes, term_df
from rankstack.index.query import SegmentSearcher

TOKEN = re.compile(r"\w+")
QUERIES = "queries.msmarco-dev-small.jsonl"
OUT = Path(__file__).resolve().parent / "out" / "bench_kernels"


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def build_real(data: Path) -> tuple[dict, np.ndarray, dict[str, int]]:
    """CSR postings (term ids by first occurrence) of the corpus' text field."""
    vocab: dict[str, int] = {}
    ids: list[int] = []
    lengths: list[int] = []
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            toks = tokenize(json.loads(line)["text"])
            lengths.append(len(toks))
            ids.extend(vocab.setdefault(t, len(vocab)) for t in toks)
    return _csr(np.array(ids, np.int64), np.array(lengths, np.int64), len(vocab)), np.array(lengths, np.int32), vocab


def build_synthetic(n_docs: int = 800_000, vocab: int = 300_000, seed: int = 0):
    """Zipfian short docs of 8-12 tokens; term ids are frequency ranks."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 12, size=n_docs, endpoint=True)
    ids = np.minimum(rng.zipf(1.07, size=int(lengths.sum())), vocab) - 1
    return _csr(ids, lengths, vocab), lengths.astype(np.int32), None


def _csr(ids: np.ndarray, lengths: np.ndarray, vocab: int) -> dict:
    n_docs = len(lengths)
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pairs, tf = np.unique(ids * n_docs + doc, return_counts=True)
    terms = pairs // n_docs
    offsets = np.searchsorted(terms, np.arange(vocab + 1)).astype(np.int64)
    return dict(term_offsets=offsets, docnos=(pairs % n_docs).astype(np.int32), values=tf.astype(np.uint32))


def load_segment(data: Path | None) -> tuple[dict, np.ndarray, dict | None, float]:
    """(encoded arrays, doc lengths, vocabulary or None, encode seconds), cached on disk with
    a copy of the queries (so the cache alone suffices: bench/out/bench_kernels/pypi)."""
    cache = OUT / ("pypi" if data else "synthetic")
    if (cache / "meta.npy").exists():
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in cache.glob("*.npy") if p.stem != "doc_lengths"}
        vocab = json.loads((cache / "vocab.json").read_text()) if (cache / "vocab.json").exists() else None
        return arrays, np.load(cache / "doc_lengths.npy"), vocab, float("nan")
    csr, lengths, vocab = build_real(data) if data else build_synthetic()
    t0 = time.perf_counter()
    arrays = encode_postings(csr["term_offsets"], csr["docnos"], csr["values"], lengths, "bm25")
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(cache / f"{name}.npy", arr)
    np.save(cache / "doc_lengths.npy", lengths)
    if vocab is not None:
        (cache / "vocab.json").write_text(json.dumps(vocab))
        shutil.copyfile(data / QUERIES, cache / QUERIES)
    return arrays, lengths, vocab, seconds


def make_queries(data: Path | None, vocab: dict | None, n_terms: int, n: int) -> list[list[int]]:
    """Term ids of the first n queries (unknown terms dropped); synthetic: Zipfian ids."""
    if data:
        path = data / QUERIES if (data / QUERIES).is_file() else OUT / "pypi" / QUERIES
        with open(path, encoding="utf-8") as f:
            texts = [tokenize(json.loads(line)["text"]) for line, _ in zip(f, range(n))]
        return [[vocab[t] for t in toks if t in vocab] for toks in texts]
    rng = np.random.default_rng(1)
    return [(np.minimum(rng.zipf(1.3, size=rng.integers(2, 7)), n_terms) - 1).tolist() for _ in range(n)]


def run(searcher: SegmentSearcher, queries, k: int, algorithm: str, repeat: int = 1, **kw) -> tuple[float, list]:
    """(queries/s of the best of `repeat` passes, results), one query at a time."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = [searcher.search(t, w, k, algorithm=algorithm, **kw) for t, w in queries]
        best = min(best, time.perf_counter() - t0)
    return len(queries) / best, res


def run_batch(searcher: SegmentSearcher, queries, k: int, algorithm: str, threads: int | None,
              repeat: int = 1, **kw) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        searcher.search_batch(queries, k, algorithm=algorithm, threads=threads, **kw)
        best = min(best, time.perf_counter() - t0)
    return len(queries) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/pypi-summaries"))
    ap.add_argument("--synthetic", action="store_true", help="ignore --data, use a Zipfian collection")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k1", type=float, default=1.2)
    ap.add_argument("--b", type=float, default=0.75)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes (best is reported)")
    args = ap.parse_args()
    usable = (args.data / "corpus.jsonl.gz").is_file() or (OUT / "pypi" / "meta.npy").exists()
    data = None if args.synthetic or not usable else args.data

    arrays, lengths, vocab, enc_s = load_segment(data)
    df = term_df(arrays)
    n_docs, n_post = len(lengths), int(df.sum())
    print(f"collection: {'pypi-summaries' if data else 'synthetic zipf'}: {n_docs} docs, {len(df)} terms, "
          f"{n_post} postings, encode {enc_s:.2f}s (nan: cached)")
    total, packed = postings_nbytes(arrays), arrays["data"].nbytes
    print(f"postings: {total / n_post:.3f} bytes/posting "
          f"(data {packed / n_post:.3f}, metadata {(total - packed) / n_post:.3f})")

    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    queries = []
    for ids in make_queries(data, vocab, len(df), args.queries):
        c = Counter(int(i) for i in ids if df[int(i)] > 0)
        t = np.array(sorted(c), np.int32)
        queries.append((t, (idf[t] * np.array([c[i] for i in t.tolist()], np.float32)).astype(np.float32)))
    print(f"queries: {len(queries)}, mean terms {np.mean([len(t) for t, _ in queries]):.2f}, "
          f"mean postings/query {np.mean([df[t].sum() for t, _ in queries]):.0f}")

    searcher = SegmentSearcher(arrays, lengths)
    kw = dict(k1=args.k1, b=args.b, avgdl=float(lengths.mean()))
    for algorithm in ("exhaustive", "maxscore", "bmw"):  # compile (cached on disk) and warm up
        run(searcher, queries[:200], 10, algorithm, **kw)
        searcher.search_batch(queries[:50], 10, algorithm=algorithm, threads=1, **kw)
    print(f"single thread, best of {args.repeat} passes; batch = search_batch (threads), "
          f"threads=1 and all {numba.config.NUMBA_NUM_THREADS} threads")
    for k in (10, 1000):
        ref = None
        for algorithm in ("exhaustive", "maxscore", "bmw"):
            qps, res = run(searcher, queries, k, algorithm, args.repeat, **kw)
            if ref is None:
                ref = res
            assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(res, ref))
            b1 = run_batch(searcher, queries, k, algorithm, 1, args.repeat, **kw)
            bn = run_batch(searcher, queries, k, algorithm, None, args.repeat, **kw)
            print(f"k={k:<5} {algorithm:<10} {qps:8.0f} q/s   batch: 1 thread {b1:8.0f} q/s, all threads {bn:8.0f} q/s")
        for theta in (1.2, 2.0):  # unsafe pruning: speed and recall of the exact top k
            for algorithm in ("maxscore", "bmw"):
                qps, res = run(searcher, queries, k, algorithm, args.repeat, theta=theta, **kw)
                hit = sum(len(np.intersect1d(a[0], b[0])) for a, b in zip(res, ref))
                recall = hit / max(1, sum(len(b[0]) for b in ref))
                print(f"k={k:<5} {algorithm:<10} {qps:8.0f} q/s   theta={theta}: recall {recall:.4f}")


if __name__ == "__main__":
    main()
