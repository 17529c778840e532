"""rankstack's CrossEncoder against sentence-transformers' CrossEncoder.predict: same pairs, model, device, max_length.

Scores the first N (query, passage) pairs of TREC DL 2019's BM25 top-100 candidates with both, on one
random-weight MiniLM-L6 cross-encoder (built from the config-only folder with a fixed seed, or --model-dir),
timed alternately in one run. Prints one JSON object: pairs/s of each, the ratio, the largest absolute score
difference, and rankstack with its own default batching. On CPU also rankstack's reduced precisions
(--cpu-precisions: dtype="int8" and dtype="bf16", the latter fast only on CPUs with bf16 matrix units, which the
report names), sentence-transformers in bf16, and its own ONNX, ONNX int8 and OpenVINO backends (a worker in the
neural peers venv, bench/peers/setup_neural.sh; exported offline). No hub access. Random weights (unless
--model-dir): speed only; each reduced precision is judged by its agreement with fp32 on the same pairs (Pearson
and Spearman correlation, per-query overlap of the top 10 of each query's 100 candidates, largest absolute
difference); bench/rerank_scifact.py measures what it costs a trained model in nDCG@10.

    PYTHONPATH=src python bench/bench_cross_encoder.py --device cpu --threads 2 [--compile]
    PYTHONPATH=src python bench/bench_cross_encoder.py --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only, never the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = [REPO.parent / "shared", REPO / "shared"]
CONFIG_ONLY = "models/cross-encoder__ms-marco-MiniLM-L-6-v2__config-only"
CANDIDATES = "data/trec-dl-2019-passage/bm25_top100.candidates.tsv"


def _shared(rel: str, given: str | None) -> Path:
    if given:
        return Path(given)
    for root in SHARED:
        if (root / rel).exists():
            return root / rel
    sys.exit(f"{rel} not found under {', '.join(map(str, SHARED))}; pass its path")


def _cross_encoder_class() -> type:
    """rankstack's CrossEncoder; on a bare GPU image without orjson, json stands in for it (rankstack's other
    lexical dependencies are imported lazily, so they need not be installed)."""
    sys.path.insert(0, str(REPO / "src"))
    try:
        import orjson  # noqa: F401
    except ImportError:
        import types
        sys.modules["orjson"] = types.SimpleNamespace(loads=json.loads, dumps=lambda o: json.dumps(o).encode(),
                                                      JSONDecodeError=json.JSONDecodeError)
    from rankstack.rerank.cross_encoder import CrossEncoder

    return CrossEncoder


def load_pairs(path: Path, n: int) -> list[tuple[str, str]]:
    """The first `n` rows' (query, passage); the TSV's header is qid, pid, rank, score, query, passage."""
    csv.field_size_limit(1 << 24)
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        q, p = header.index("query"), header.index("passage")
        pairs = []
        for row in rows:
            pairs.append((row[q], row[p]))
            if len(pairs) == n:
                break
    return pairs


def build_random_model(config_dir: Path, out: Path, seed: int) -> Path:
    """A MiniLM-L6 cross-encoder with random weights (fixed seed) and the real tokenizer, saved as a plain HF folder."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(config_dir)).save_pretrained(out)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    return out


def timed(fn, arg, device: str) -> tuple[float, float, np.ndarray]:
    """Wall seconds, process CPU seconds (less sensitive to a busy shared machine) and the result of `fn(arg)`."""
    if device == "cuda":
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    result = fn(arg)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c, np.asarray(result, dtype=np.float32)


def agreement(exact: np.ndarray, approx: np.ndarray, per_query: int = 100) -> dict:
    """How closely `approx` scores follow `exact` on the same pairs (consecutive runs of `per_query` pairs are one
    query's candidates): Pearson and Spearman correlation, mean overlap of each query's top 10, max |difference|."""
    from scipy.stats import spearmanr

    overlaps = [len(set(np.argsort(-exact[i:i + per_query])[:10]) & set(np.argsort(-approx[i:i + per_query])[:10]))
                / 10 for i in range(0, len(exact) - per_query + 1, per_query)]
    return {"pearson": round(float(np.corrcoef(exact, approx)[0, 1]), 4),
            "spearman": round(float(spearmanr(exact, approx).statistic), 4),
            "top10_overlap_per_query": round(float(np.mean(overlaps)), 4) if overlaps else None,
            "max_abs_diff": float(np.abs(exact - approx).max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None,
                   help="default: fp32 on CPU, fp16 on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads), for both")
    p.add_argument("--batch-size", type=int, default=32,
                   help="pairs per batch at most, for both (32: sentence-transformers' default); rankstack also "
                        "caps the padded tokens per batch (its token budget)")
    p.add_argument("--n", type=int, default=1000, help="pairs: the first N rows of the candidates file")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--repeat", type=int, default=2, help="timed runs of each, alternating; the best counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-dir",
                   help="a saved cross-encoder folder (default: random weights from the config-only folder)")
    p.add_argument("--config-dir", help=f"the config-only folder (default: shared/{CONFIG_ONLY})")
    p.add_argument("--candidates", help=f"the candidates TSV (default: shared/{CANDIDATES})")
    p.add_argument("--cpu-precisions", nargs="*", choices=["int8", "bf16"], default=["int8", "bf16"],
                   help="CPU: rankstack's reduced precisions to run beside fp32 (none: only fp32)")
    p.add_argument("--peers-python", default=str(REPO / "bench" / ".venv-neural-peers" / "bin" / "python"),
                   help="python of the neural peers venv, for sentence-transformers' ONNX / OpenVINO backends; "
                        "'none' leaves them out")
    p.add_argument("--st-backends", nargs="+", default=["onnx", "onnx-int8", "openvino"])
    p.add_argument("--compile", action="store_true",
                   help="also rankstack with compile=True (torch.compile); its first pass, with the compilation, "
                        "reported apart and left out of the timings")
    p.add_argument("--ablation", action="store_true",
                   help="also time rankstack without a token budget, and with the full last layer")
    args = p.parse_args()
    args.dtype = args.dtype or ("fp16" if args.device == "cuda" else "fp32")
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs(_shared(CANDIDATES, args.candidates), args.n)

    import sentence_transformers as st
    import transformers
    CrossEncoder = _cross_encoder_class()
    from rankstack.devices import cpu_description

    tmp = tempfile.TemporaryDirectory(prefix="bench-ce-")
    model_dir = Path(args.model_dir) if args.model_dir else \
        build_random_model(_shared(CONFIG_ONLY, args.config_dir), Path(tmp.name) / "model", args.seed)

    def ours_with(dtype_=None, **batching):
        return CrossEncoder(model_dir, device=args.device, dtype=dtype_ or args.dtype, threads=args.threads,
                            max_length=args.max_length, cache=False, progress=False, **batching)

    ours = ours_with(batch_size=args.batch_size)
    theirs = st.CrossEncoder(str(model_dir), device=args.device, max_length=args.max_length).to(torch_dtype)
    runners = {"rankstack": ours.predict, "sentence_transformers":
               lambda x: theirs.predict(x, batch_size=args.batch_size, show_progress_bar=False)}
    reduced = args.cpu_precisions if args.device == "cpu" and args.dtype == "fp32" else []
    if args.compile:
        runners["rankstack_compiled"] = ours_with(batch_size=args.batch_size, compile=True).predict
    for precision in reduced:
        runners[f"rankstack_{precision}"] = ours_with(batch_size=args.batch_size, dtype_=precision).predict
    if "bf16" in reduced:
        theirs16 = st.CrossEncoder(str(model_dir), device="cpu", max_length=args.max_length).to(torch.bfloat16)
        runners["sentence_transformers_bf16"] = \
            lambda x: np.asarray(theirs16.predict(x, batch_size=args.batch_size, show_progress_bar=False), np.float32)
    worker, worker_names = None, set()
    if args.device == "cpu" and args.peers_python != "none" and Path(args.peers_python).exists():
        sys.path.insert(0, str(REPO / "bench"))
        from peers.st_backends import Worker
        worker = Worker(args.peers_python, "cross-encoder", model_dir, [list(x) for x in pairs],
                        REPO / "bench" / "out" / "st-backends-ce", args.st_backends, torch.get_num_threads(),
                        args.batch_size, args.max_length)
        for name in worker.backends:
            runners[f"sentence_transformers_{name}"] = (lambda n: lambda x: worker.run(n))(name)
            worker_names.add(f"sentence_transformers_{name}")
    defaults = ours_with()
    if (defaults.batch_size, defaults.token_budget) != (ours.batch_size, ours.token_budget):
        runners["rankstack_default_batching"] = defaults.predict
    if args.ablation:  # what the token budget and the [CLS]-only last layer are worth
        runners["rankstack_no_token_budget"] = ours_with(batch_size=args.batch_size, token_budget=1 << 30).predict
        full = ours_with(batch_size=args.batch_size)
        if full.first_token_last_layer:
            layers = full.model.base_model.encoder.layer
            layers[-1] = layers[-1].layer
        runners["rankstack_full_last_layer"] = full.predict

    first_pass = {}
    for name, run in runners.items():  # warm-up (the worker warmed up its own); a compiled one: a whole pass
        if name == "rankstack_compiled":
            first_pass[name] = round(timed(run, pairs, args.device)[0], 1)
        elif name not in worker_names:
            run(pairs[:64])
    best, cpu, scores = {k: float("inf") for k in runners}, {k: float("inf") for k in runners}, {}
    try:
        for _ in range(args.repeat):  # alternate, so that a noisy neighbour hurts all alike
            for name, run in runners.items():
                if name in worker_names:  # timed inside the worker
                    t, c, scores[name] = run(pairs)
                else:
                    t, c, scores[name] = timed(run, pairs, args.device)
                best[name], cpu[name] = min(best[name], t), min(cpu[name], c)
    finally:
        if worker is not None:
            worker.close()

    ref = scores["sentence_transformers"]
    tokens = ours.tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation="only_second",
                            max_length=args.max_length)["input_ids"]
    report = {"device": args.device, "load_average": os.getloadavg(),
              "device_name": torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPUs",
              **({"cpu": cpu_description()} if args.device == "cpu" else {}),
              "threads": torch.get_num_threads(), "dtype": args.dtype, "pairs": len(pairs),
              "tokens_per_pair": round(float(np.mean([len(t) for t in tokens])), 1), "max_length": args.max_length,
              "batch_size": args.batch_size, "rankstack_token_budget": ours.token_budget,
              "model": str(args.model_dir or f"random MiniLM-L6 (seed {args.seed})"),
              "first_token_last_layer": ours.first_token_last_layer, "torch": torch.__version__,
              "transformers": transformers.__version__, "sentence_transformers": st.__version__}
    for name in runners:
        report[f"{name}_pairs_per_s"] = round(len(pairs) / best[name], 1)
    for name in runners:
        if name != "sentence_transformers":
            report[f"ratio_{name}"] = round(best["sentence_transformers"] / best[name], 3)
            report[f"max_abs_diff_{name}"] = float(np.abs(scores[name] - ref).max())
    for precision in reduced:
        report[f"{precision}_agreement_with_fp32"] = agreement(scores["rankstack"], scores[f"rankstack_{precision}"])
    if "sentence_transformers_onnx-int8" in scores:
        report["st_onnx_int8_agreement_with_fp32"] = agreement(ref, scores["sentence_transformers_onnx-int8"])
    report["seconds"] = {k: round(v, 3) for k, v in best.items()}
    if first_pass:
        report["first_pass_seconds (with the compilation)"] = first_pass
    if args.device == "cpu":
        report["cpu_seconds"] = {k: round(v, 3) for k, v in cpu.items()}
        report["cpu_time_ratio"] = round(cpu["sentence_transformers"] / cpu["rankstack"], 3)
    print(json.dumps(report, indent=1))
    tmp.cleanup()


if __name__ == "__main__":
    main()
