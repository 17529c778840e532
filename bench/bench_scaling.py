"""BM25 scaling curve to 5M+ documents on a synthetic corpus drawn from pypi-summaries' real distributions.

The synthetic documents are not text: each is a bag of analysed terms whose length is drawn from the real
documents' analysed lengths and whose terms are drawn independently from the real collection's term
frequencies (a unigram model of pypi-summaries: same vocabulary, same Zipf curve, no co-occurrence). They go
straight into the index writer, so build times exclude text analysis (pypi-summaries' own build, analysis
included, is in bench_bm25.py). Queries are pypi-summaries' MS MARCO queries through the index's analyzer.

Per size: build seconds (writer, one segment after a forced merge), index size, single-thread queries/s at
k=10 and k=1000 through `InvertedIndex.search` (query analysis and id lookup included, as in bench_bm25.py),
with MaxScore's results checked equal to the exhaustive kernel's on the first queries. The numba kernels are
loaded before, on a small warm-up index. How much memory search needs: bench/search_memory.py on an index kept
with --keep.

    PYTHONPATH=src python bench/bench_scaling.py --sizes 778196 2000000 5000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from rankstack import BM25
from rankstack.index.inverted import IndexWriter
from rankstack.index.search import InvertedParams
from rankstack.text.analyzer import Analyzer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-summaries"
OUT = Path(__file__).resolve().parent / "out" / "scaling"
CHUNK = 100_000


def distributions(corpus: Path, analyzer: Analyzer) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(vocabulary, term probabilities, document lengths) of the real collection, analysed."""
    counts: Counter = Counter()
    lengths = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        batch = []
        for line in f:
            d = orjson.loads(line)
            batch.append(f'{d.get("title") or ""} {d.get("text") or ""}')
            if len(batch) == CHUNK:
                _count(batch, analyzer, counts, lengths)
                batch = []
        _count(batch, analyzer, counts, lengths)
    vocab = list(counts)
    freq = np.array([counts[t] for t in vocab], np.float64)
    return vocab, freq / freq.sum(), np.array(lengths, np.int64)


def _count(texts: list[str], analyzer: Analyzer, counts: Counter, lengths: list[int]) -> None:
    batch = analyzer.analyze_batch(texts)
    terms, tokens = batch.flat(), batch.counts.tolist()  # tokens per text, dropped ones (None) included
    start = 0
    for n in tokens:
        lengths.append(n - terms[start:start + n].count(None))
        start += n
    counts.update(t for t in terms if t is not None)


def build(path: Path, n_docs: int, vocab: list[str], probs: np.ndarray, lengths: np.ndarray,
          analyzer: Analyzer, seed: int = 0) -> float:
    """Write n_docs synthetic documents; return the writer's seconds (sampling excluded)."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs)
    settings = {"mode": "bm25", "k1": 0.9, "b": 0.4, "length_norm": "lucene", "store": False,
                "metadata": {"analyzer": analyzer.config(), "fields": "synthetic unigram sample of pypi-summaries"}}
    seconds = 0.0
    shutil.rmtree(path, ignore_errors=True)
    with IndexWriter(path, settings) as writer:
        for start in range(0, n_docs, CHUNK):
            size = min(CHUNK, n_docs - start)
            doc_lengths = rng.choice(lengths, size)
            ids = np.searchsorted(cumulative, rng.random(int(doc_lengths.sum())) * cumulative[-1], side="right")
            terms = [vocab[i] for i in np.minimum(ids, len(vocab) - 1).tolist()]
            doc_ids = [f"s{start + i}" for i in range(size)]
            t0 = time.perf_counter()
            writer.add_batch(doc_ids, terms, doc_lengths.tolist())
            seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        writer.commit()
        writer.force_merge(1)
        seconds += time.perf_counter() - t0
    return seconds


def queries_per_second(bm25: BM25, queries: list[str], k: int) -> float:
    index, doc_ids = bm25.index, bm25.index.doc_ids

    def run(qs):
        for q in qs:
            docnos, scores = index.search([bm25.query_terms(q)], k)[0]
            doc_ids.take(docnos), scores.tolist()

    run(queries[:200])  # warm-up: compilation, page cache
    t0 = time.perf_counter()
    run(queries)
    return len(queries) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[778_196, 2_000_000, 5_000_000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--check", type=int, default=100, help="queries whose MaxScore top-k is checked exact")
    ap.add_argument("--workdir", default="/tmp/bench-scaling")
    ap.add_argument("--keep", action="store_true", help="keep the indexes (for bench/search_memory.py --limit-mb)")
    args = ap.parse_args()
    import numba
    numba.set_num_threads(1)
    analyzer = Analyzer()
    t0 = time.perf_counter()
    vocab, probs, lengths = distributions(DATA / "corpus.jsonl.gz", analyzer)
    print(f"distributions: {len(vocab):,} terms, mean length {lengths.mean():.1f}, {time.perf_counter() - t0:.0f} s")
    with open(DATA / "queries.msmarco-dev-small.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:args.queries]
    warm = Path(args.workdir) / "warm-up"
    build(warm, 2000, vocab, probs, lengths, analyzer)
    queries_per_second(BM25(warm, progress=False), queries[:300], 10)  # loads the numba kernels
    rows = []
    for n in args.sizes:
        path = Path(args.workdir) / f"synthetic-{n}"
        seconds = build(path, n, vocab, probs, lengths, analyzer)
        bm25 = BM25(path, progress=False)
        for q in queries[:args.check]:
            for k in (10, 1000):
                fast = bm25.index.search([bm25.query_terms(q)], k, InvertedParams("maxscore"))[0]
                exact = bm25.index.search([bm25.query_terms(q)], k, InvertedParams("exhaustive"))[0]
                assert all(np.array_equal(a, b) for a, b in zip(fast, exact)), f"MaxScore differs on {q!r}"
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        row = {"docs": n, "segments": len(bm25.index.segments), "build_s": round(seconds, 1),
               "build_docs_per_s": round(n / seconds), "index_mb": round(size / 2**20, 1),
               "qps_k10": round(queries_per_second(bm25, queries, 10)),
               "qps_k1000": round(queries_per_second(bm25, queries, 1000))}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del bm25
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scaling.json").write_text(json.dumps(rows, indent=1))
    print("\n| documents | build s | build docs/s | index MB | q/s k=10 | q/s k=1000 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['docs']:,} | {r['build_s']} | {r['build_docs_per_s']:,} | {r['index_mb']} | {r['qps_k10']:,} | "
              f"{r['qps_k1000']:,} |")


if __name__ == "__main__":
    main()
