"""BM25 engines side by side: rankstack, PISA, bm25s (numba, numpy), tantivy, Pyserini (Lucene), Anserini's Java batch.

Runs bench/peers/bm25_peers.py once per engine and collection, in one run on the same machine,
and prints a Markdown table with each peer's figures as ratios of rankstack's. "anserini" is Lucene's
own batch search in Java (bench/peers/anserini_batch.py) over the index the pyserini engine built. "pisa" gives one
row per PISA query algorithm, timed through its C++ retrieve call ("cpp") and through PyTerrier ("pyterrier").

    bash bench/peers/setup.sh && bench/.venv-peers/bin/pip install --no-deps -e . orjson
    bench/.venv-peers/bin/python bench/bench_bm25.py [--collections scifact pypi] [--engines ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLLECTIONS = {
    "scifact": ["--corpus", f"{DATA}/scifact/corpus.jsonl.gz", "--queries", f"{DATA}/scifact/queries.jsonl",
                "--qrels", f"{DATA}/scifact/qrels/test.tsv"],
    "pypi": ["--corpus", f"{DATA}/pypi-summaries/corpus.jsonl.gz",
             "--queries", f"{DATA}/pypi-summaries/queries.msmarco-dev-small.jsonl"],
}
ENGINES = ["rankstack", "pisa", "bm25s-numba", "bm25s-numpy", "tantivy", "pyserini", "anserini"]
SLOW = {("bm25s-numpy", "pypi"): 200}  # ~10 q/s: fewer timed queries


def run(engine: str, collection: str, num_queries: int, workdir: str) -> dict:
    n = SLOW.get((engine, collection), num_queries)
    if engine == "anserini":
        flags = dict(zip(COLLECTIONS[collection][::2], COLLECTIONS[collection][1::2]))
        index = Path(workdir) / f"pyserini-{Path(flags['--corpus']).parent.name}"  # as bm25_peers.py names it
        cmd = [sys.executable, str(HERE / "peers" / "anserini_batch.py"), "--index", str(index),
               "--queries", flags["--queries"], "--num-queries", str(n), "--k", "10", "1000",
               *(["--qrels", flags["--qrels"]] if "--qrels" in flags else [])]
    else:
        cmd = [sys.executable, str(HERE / "peers" / "bm25_peers.py"), "--engine", engine, *COLLECTIONS[collection],
               "--num-queries", str(n), "--k", "10", "1000", "--workdir", workdir]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"engine": engine, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout)


def ratio(value, reference) -> str:
    if value is None or reference in (None, 0):
        return "–"
    return f"{value:,.0f} ({value / reference:.2f}x)" if value >= 10 else f"{value:.4g} ({value / reference:.2f}x)"


def table(results: list[dict]) -> str:
    """One row per engine; figures with their ratio to rankstack's in brackets."""
    ref = next((r for r in results if r.get("engine") == "rankstack" and "error" not in r), None)
    columns = [("q/s 1 thread k=10", lambda r: r["qps_1thread"].get("10")),
               ("q/s 1 thread k=1000", lambda r: r["qps_1thread"].get("1000")),
               ("q/s batch 1 thread k=10", lambda r: (r.get("qps_batch_1thread") or {}).get("10")),
               ("q/s batch 1 thread k=1000", lambda r: (r.get("qps_batch_1thread") or {}).get("1000")),
               ("q/s all cores k=10", lambda r: (r.get("qps_all_cores") or {}).get("10")),
               ("q/s all cores k=1000", lambda r: (r.get("qps_all_cores") or {}).get("1000")),
               ("build docs/s", lambda r: r.get("build_docs_per_s")),
               ("index MB", lambda r: r["index_bytes"] / 2**20 if "index_bytes" in r else None),
               ("search RSS MB", lambda r: r.get("search_rss_mb")),
               ("peak RSS MB", lambda r: r.get("peak_rss_mb")),
               ("nDCG@10", lambda r: r.get("ndcg@10"))]
    lines = ["| engine | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['engine']} | error: {r['error']} |")
            continue
        cells = [ratio(get(r), get(ref) if ref else None) if name != "nDCG@10" else
                 (f"{get(r):.4f}" if get(r) is not None else "–") for name, get in columns]
        lines.append(f"| {r['engine']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=list(COLLECTIONS))
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--num-queries", type=int, default=2000)
    parser.add_argument("--workdir", default="/tmp/bench-work")
    parser.add_argument("--output", default=str(HERE / "out" / "bm25.json"))
    args = parser.parse_args()
    report = {}
    for collection in args.collections:
        results = []
        for engine in args.engines:
            print(f"{collection}: {engine} ...", file=sys.stderr, flush=True)
            result = run(engine, collection, args.num_queries, args.workdir)
            results.extend(result if isinstance(result, list) else [result])
        report[collection] = results
        print(f"\n### {collection}\n\n{table(results)}\n", flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
