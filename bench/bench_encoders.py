"""rankstack's encoders against sentence-transformers on the same model, data, batch size and device, in one run.

Encodes the first N SciFact documents (title + " " + text) with rankstack's DenseEncoder and with
SentenceTransformer.encode (all-MiniLM-L6-v2), then with SpladeEncoder and sentence-transformers' SparseEncoder
(MLM transformer + SpladePooling("max"), when installed) on splade-tiny. On CPU also rankstack's reduced
precisions (--cpu-precisions: dtype="int8", dynamic quantisation, and dtype="bf16", which runs on the CPU's bf16
matrix units where it has them: AMX or AVX512-BF16, named in the report), sentence-transformers in bf16 (this venv)
and, for the dense model, sentence-transformers' own ONNX, ONNX int8 (its
export_dynamic_quantized_onnx_model, "avx2") and OpenVINO backends, run by a worker in the neural peers venv
(bench/peers/setup_neural.sh; bench/peers/st_backends.py; exported offline into bench/out/st-backends). Every
runner runs once per pass, passes interleaved, best of --repeat. `--compile` adds rankstack with compile=True
(torch.compile; its first pass, with the compilation, reported apart). Prints one JSON object: per runner wall and CPU
seconds, speed against sentence-transformers (torch, this venv), the largest absolute difference of its output
and the lowest cosine. `--ndcg` adds nDCG@10 on SciFact test of rankstack fp32 and each reduced precision
(exact search). No hub
access: models come from local folders.

    PYTHONPATH=src python bench/bench_encoders.py --n 300 --device cpu --threads 2 --repeat 3 [--compile]
    PYTHONPATH=src python bench/bench_encoders.py --n 300 --device cpu --threads 2 --no-speed --ndcg
    PYTHONPATH=src python bench/bench_encoders.py --device cuda --dtype fp16 --n 5183 \
        --model-dir models/all-MiniLM-L6-v2 --splade-dir models/splade-tiny-msmarco
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/peers  # local folders only, never the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEARCH = [REPO / "shared" / "models", REPO / "models", REPO.parent / "shared" / "models"]
CORPORA = [REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz",
           REPO / "src" / "rankstack" / "data" / "embedded" / "scifact" / "corpus.jsonl.gz"]


def _encoders():
    """rankstack.encoders (its imports are lazy: a bare GPU image without the lexical stack's dependencies works)."""
    sys.path.insert(0, str(REPO / "src"))
    return importlib.import_module("rankstack.encoders")


def _find(name: str, given: str | None) -> str:
    if given:
        return given
    for folder in SEARCH:
        if (folder / name).is_dir():
            return str(folder / name)
    sys.exit(f"model folder {name} not found under {', '.join(map(str, SEARCH))}; pass its path")


def load_docs(path: Path, n: int) -> list[str]:
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            docs.append(f"{obj.get('title') or ''} {obj['text']}".strip())
            if len(docs) == n:
                break
    return docs


def local(fn, docs, to_array):
    """A runner: one timed call of `fn(docs)` in this process -> (wall s, CPU s, result as an array);
    `run(warm_up=True)` encodes only the first batch's worth (loads lazily built kernels outside the timings)."""
    def run(warm_up: bool = False):
        t, c = time.perf_counter(), time.process_time()
        out = fn(docs[:64] if warm_up else docs)
        return time.perf_counter() - t, time.process_time() - c, to_array(out)
    return run


def warm_up(runners: dict) -> dict:
    """Warm each runner up: the first batch's worth, or a whole untimed pass for a compiled one (the compilation
    and any recompilation for other batch shapes); returns that pass's time per compiled runner."""
    first = {}
    for name, run in runners.items():
        wall, _, _ = run(warm_up=not name.endswith("_compiled"))
        if name.endswith("_compiled"):
            first[f"{name}_first_pass_wall_s (with the compilation)"] = round(wall, 1)
    return first


def interleave(runners: dict, repeat: int, reference: str) -> dict:
    """Every runner once per pass, `repeat` passes (a noisy neighbour hurts all alike); best wall and CPU time of
    each, its speed against `reference`, and how far its output is from the reference's (max |difference|, and
    the lowest cosine of a row)."""
    best = {k: [float("inf"), float("inf")] for k in runners}
    out = {}
    for _ in range(repeat):
        for name, run in runners.items():
            wall, cpu, out[name] = run()
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    ref = out[reference]
    report = {}
    for name in runners:
        a = out[name]
        cos = (a * ref).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
        report[name] = {"wall_s": round(best[name][0], 3), "cpu_s": round(best[name][1], 3),
                        "speed_vs_" + reference: round(best[reference][0] / best[name][0], 3),
                        "cpu_speed_vs_" + reference: round(best[reference][1] / best[name][1], 3),
                        "max_abs_diff": float(np.abs(a - ref).max()), "min_cosine": round(float(cos.min()), 5)}
    return report


def scifact_subset(n_docs: int | None):
    """SciFact test: the corpus, every judged document first and then the rest in corpus order (its first
    `n_docs` when given), queries and qrels."""
    from rankstack import datasets
    data = datasets.load("beir/scifact/test")
    docs = list(data.corpus)
    judged = {d for q in data.qrels for d in data.qrels[q]}
    docs = [d for d in docs if d.id in judged] + [d for d in docs if d.id not in judged]
    return docs[:n_docs] if n_docs else docs, data.queries, data.qrels


def encoded(enc, texts: list[str], side: str, cache: Path | None, tag: str, sparse: bool):
    """`enc.encode_<side>(texts)`, kept under `cache` when given (keyed by the encoder's record, the side and the
    texts), so that a rerun does not encode them again."""
    import hashlib
    import scipy.sparse as sp

    fn = enc.encode_documents if side == "documents" else enc.encode_queries
    if cache is None:
        return fn(texts)
    key = hashlib.sha256(json.dumps([enc.to_record(), side, texts], sort_keys=True, default=str).encode())
    path = cache / f"{tag}-{side}-{key.hexdigest()[:16]}.{'npz' if sparse else 'npy'}"
    if path.exists():
        return sp.load_npz(path).tocsr() if sparse else np.load(path)
    out = fn(texts)
    cache.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, out) if sparse else np.save(path, out)
    return out


def ndcg_exact(encoders: dict, docs, queries, qrels, sparse: bool, cache: Path | None = None,
               budget_s: float | None = None, chunk: int = 250) -> dict:
    """nDCG@10 of exact search (dot products over the documents) with each encoder. The documents are encoded
    chunk by chunk, every encoder in turn on each chunk (encodings kept under `cache`); past `budget_s` seconds
    no new chunk starts, and every encoder is judged on the same documents encoded so far (judged ones first
    when `docs` comes from scifact_subset), which the report states."""
    import scipy.sparse as sp
    from rankstack.data.run import IdList, Run
    from rankstack.evaluate import evaluate

    qids, t0 = list(queries), time.perf_counter()
    parts = {name: [] for name in encoders}
    seconds = dict.fromkeys(encoders, 0.0)
    for start in range(0, len(docs), chunk):
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
        texts = [x.contents for x in docs[start:start + chunk]]
        for name, enc in encoders.items():
            t = time.perf_counter()
            parts[name].append(encoded(enc, texts, "documents", cache, name, sparse))
            seconds[name] += time.perf_counter() - t
        print(json.dumps({"encoded": start + len(texts), "of": len(docs), "s": round(time.perf_counter() - t0)}),
              file=sys.stderr, flush=True)
    n = sum(len(x) if not sparse else x.shape[0] for x in parts[next(iter(encoders))])
    ids = IdList(d.id for d in docs[:n])
    out = {"documents": n, "of": len(docs)}
    for name, enc in encoders.items():
        d = sp.vstack(parts[name]).tocsr() if sparse else np.concatenate(parts[name])
        q = encoded(enc, [queries[x] for x in qids], "queries", cache, name, sparse)
        scores = (q @ d.T).toarray() if sparse else q @ d.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        run = Run({qid: (top[i], scores[i, top[i]]) for i, qid in enumerate(qids)}, ids, presorted=True)
        out[name] = {"nDCG@10": round(evaluate(run, qrels, ["nDCG@10"]).value("nDCG@10"), 4),
                     "document_encoding_s (this run; 0 when cached)": round(seconds[name], 1)}
        print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    names = list(encoders)
    for name in names[1:]:
        out[name]["delta_vs_" + names[0]] = round(out[name]["nDCG@10"] - out[names[0]]["nDCG@10"], 4)
        if not sparse:
            first, this = np.concatenate(parts[names[0]]), np.concatenate(parts[name])
            cos = (first * this).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(this, axis=1)
            out[name]["document_cosine_vs_" + names[0]] = {"min": round(float(cos.min()), 4),
                                                           "mean": round(float(cos.mean()), 5)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None, help="default: fp32 on CPU, fp16 on CUDA")
    p.add_argument("--n", type=int, default=300, help="documents to encode")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch, for both libraries")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every runner (default: torch's)")
    p.add_argument("--model-dir", help="dense model folder (default: all-MiniLM-L6-v2 under shared/models)")
    p.add_argument("--splade-dir", help="SPLADE folder (default: splade-tiny-msmarco under shared/models)")
    p.add_argument("--corpus", type=Path, help="BEIR corpus.jsonl.gz (default: SciFact)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved passes; the best of each runner counts")
    p.add_argument("--skip", choices=["dense", "splade"], action="append", default=[])
    p.add_argument("--no-speed", action="store_true", help="no timings (with --ndcg: only the effectiveness)")
    p.add_argument("--cpu-precisions", nargs="*", choices=["int8", "bf16"], default=["int8", "bf16"],
                   help="CPU: rankstack's reduced precisions to run beside fp32 (none: only fp32)")
    p.add_argument("--compile", action="store_true",
                   help="also rankstack with compile=True (torch.compile), its first pass (with the compilation) "
                        "reported apart and left out of the timings")
    p.add_argument("--peers-python", default=str(REPO / "bench" / ".venv-neural-peers" / "bin" / "python"),
                   help="python of the neural peers venv (bench/peers/setup_neural.sh), for sentence-transformers' "
                        "ONNX / OpenVINO backends; 'none' leaves them out")
    p.add_argument("--st-backends", nargs="+", default=["onnx", "onnx-int8", "openvino"])
    p.add_argument("--ndcg", action="store_true",
                   help="also nDCG@10 on SciFact test of rankstack fp32 vs each reduced precision (exact search "
                        "over --ndcg-docs)")
    p.add_argument("--ndcg-cache", type=Path, default=REPO / "bench" / "out" / "encodings",
                   help="folder keeping --ndcg's encodings (keyed by encoder record and texts); 'none': no cache")
    p.add_argument("--ndcg-minutes", type=float, default=None,
                   help="stop encoding new document chunks for --ndcg after this long (all encoders are judged on "
                        "the same documents; the report gives their number)")
    p.add_argument("--ndcg-docs", type=int, default=None,
                   help="documents for --ndcg: every judged one first, then the rest in corpus order (default all)")
    args = p.parse_args()
    args.dtype = args.dtype or ("fp16" if args.device == "cuda" else "fp32")
    cache = None if str(args.ndcg_cache) == "none" else args.ndcg_cache
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    corpus = args.corpus or next((c for c in CORPORA if c.exists()), None)
    if corpus is None:
        sys.exit("SciFact corpus not found; pass --corpus")
    docs = load_docs(corpus, args.n)
    cpu = args.device == "cpu"
    reduced = args.cpu_precisions if cpu and args.dtype == "fp32" else []
    peers = cpu and args.peers_python != "none" and Path(args.peers_python).exists()

    enc = _encoders()
    from rankstack.devices import cpu_description
    import sentence_transformers as st
    import transformers
    report = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device == "cuda" else
              f"{os.cpu_count()} CPUs, {threads} threads for every runner", "dtype": args.dtype, "n": len(docs),
              "batch_size": args.batch_size, "corpus": str(corpus), "torch": torch.__version__,
              "transformers": transformers.__version__, "sentence_transformers": st.__version__,
              "load_average": os.getloadavg(), "cpu": cpu_description()}

    if "dense" not in args.skip:
        model_dir = _find("sentence-transformers__all-MiniLM-L6-v2", args.model_dir)
        ours = enc.DenseEncoder(model_dir, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                progress=False)
        theirs = st.SentenceTransformer(model_dir, device=args.device).to(torch_dtype)
        runners = {"sentence_transformers": local(
            lambda d: theirs.encode(d, batch_size=args.batch_size, convert_to_numpy=True), docs, np.asarray),
            "rankstack": local(ours.encode_documents, docs, np.asarray)}
        ours_default = enc.DenseEncoder(model_dir, device=args.device, dtype=args.dtype, progress=False)
        if (ours_default.batch_size, ours_default.token_budget) != (ours.batch_size, ours.token_budget):
            runners["rankstack_default_batching"] = local(ours_default.encode_documents, docs, np.asarray)
        if args.compile:
            runners["rankstack_compiled"] = local(enc.DenseEncoder(
                model_dir, device=args.device, dtype=args.dtype, batch_size=args.batch_size, progress=False,
                compile=True).encode_documents, docs, np.asarray)
        lowered = {p: enc.DenseEncoder(model_dir, device="cpu", dtype=p, progress=False) for p in reduced}
        for precision, encoder in lowered.items():
            runners[f"rankstack_{precision}"] = local(encoder.encode_documents, docs, np.asarray)
        if "bf16" in reduced:
            theirs16 = st.SentenceTransformer(model_dir, device="cpu").to(torch.bfloat16)
            runners["sentence_transformers_bf16"] = local(
                lambda d: theirs16.encode(d, batch_size=args.batch_size, convert_to_numpy=True), docs,
                lambda x: np.asarray(x, dtype=np.float32))
        worker = None
        if peers and not args.no_speed:
            from peers.st_backends import Worker
            worker = Worker(args.peers_python, "dense", model_dir, docs, REPO / "bench" / "out" / "st-backends",
                            args.st_backends, threads, args.batch_size)
            report["peers_sentence_transformers"] = worker.version
            for name in worker.backends:
                runners[f"sentence_transformers_{name}"] = (lambda n: lambda: worker.run(n))(name)
        try:
            if not args.no_speed:
                first = warm_up({k: v for k, v in runners.items() if not k.startswith("sentence_transformers_")})
                report["dense"] = {"model": model_dir, **interleave(runners, args.repeat, "sentence_transformers"),
                                   **first}
        finally:
            if worker is not None:
                worker.close()
        if args.ndcg:
            subset = scifact_subset(args.ndcg_docs)
            report.setdefault("dense", {})["ndcg"] = ndcg_exact(
                {"fp32": ours_default, **lowered}, *subset, sparse=False, cache=cache,
                budget_s=args.ndcg_minutes and args.ndcg_minutes * 60)
        del ours, theirs

    if "splade" not in args.skip:
        splade_dir = _find("splade-tiny-msmarco", args.splade_dir)
        ours = enc.SpladeEncoder(splade_dir, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                 progress=False)
        try:
            from sentence_transformers import SparseEncoder
            from sentence_transformers.sparse_encoder.modules import SpladePooling
            try:  # sentence-transformers >= 5.4: a fill-mask Transformer; before: MLMTransformer
                from sentence_transformers.sparse_encoder.modules import Transformer
                mlm = Transformer(splade_dir, transformer_task="fill-mask")
            except (ImportError, TypeError):
                from sentence_transformers.sparse_encoder.modules import MLMTransformer
                mlm = MLMTransformer(splade_dir)
            theirs = SparseEncoder(modules=[mlm, SpladePooling("max")], device=args.device).to(torch_dtype)
        except ImportError as e:
            report["splade"] = {"skipped": f"sentence-transformers has no SparseEncoder here ({e})"}
        else:
            dense_of = (lambda x: x.toarray() if hasattr(x, "toarray") else x.to_dense().float().cpu().numpy())
            runners = {"sentence_transformers": local(
                lambda d: theirs.encode(d, batch_size=args.batch_size, convert_to_tensor=True), docs, dense_of),
                "rankstack": local(ours.encode_documents, docs, dense_of)}
            ours_default = enc.SpladeEncoder(splade_dir, device=args.device, dtype=args.dtype, progress=False)
            if (ours_default.batch_size, ours_default.token_budget) != (ours.batch_size, ours.token_budget):
                runners["rankstack_default_batching"] = local(ours_default.encode_documents, docs, dense_of)
            if args.compile:
                runners["rankstack_compiled"] = local(enc.SpladeEncoder(
                    splade_dir, device=args.device, dtype=args.dtype, batch_size=args.batch_size, progress=False,
                    compile=True).encode_documents, docs, dense_of)
            lowered = {p: enc.SpladeEncoder(splade_dir, device="cpu", dtype=p, progress=False) for p in reduced}
            for precision, encoder in lowered.items():
                runners[f"rankstack_{precision}"] = local(encoder.encode_documents, docs, dense_of)
            if not args.no_speed:
                first = warm_up(runners)
                report["splade"] = {"model": splade_dir, **interleave(runners, args.repeat, "sentence_transformers"),
                                    **first}
            if args.ndcg:
                subset = scifact_subset(args.ndcg_docs)
                report.setdefault("splade", {})["ndcg"] = ndcg_exact(
                    {"fp32": ours_default, **lowered}, *subset, sparse=True, cache=cache,
                    budget_s=args.ndcg_minutes and args.ndcg_minutes * 60)
    print(json.dumps(report, indent=1))
    print("reproduce: PYTHONPATH=src python bench/bench_encoders.py " + " ".join(sys.argv[1:]), file=sys.stderr)


if __name__ == "__main__":
    main()
