"""rankstack's encoders against sentence-transformers on the same model, data, batch size and device, in one run.

Encodes the first N SciFact documents (title + " " + text) with rankstack's DenseEncoder and with
SentenceTransformer.encode (all-MiniLM-L6-v2), then with SpladeEncoder and sentence-transformers' SparseEncoder
(MLM transformer + SpladePooling("max"), when installed) on splade-tiny. Prints one JSON object: docs/s of each,
the ratio rankstack / sentence-transformers, and the largest absolute difference of their outputs. No hub access:
models come from local folders.

    PYTHONPATH=src python bench/bench_encoders.py --n 300 --device cpu --dtype fp32
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only, never the hub
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


def timed(fn, repeat: int, device: str) -> tuple[float, object]:
    """Best wall time of `repeat` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, result


def compare(ours, theirs, docs: list[str], args, to_array) -> dict:
    """Warm both up, then time them alternately; report docs/s, ratio and max |difference|."""
    ours(docs[:32])
    theirs(docs[:32])
    t_ours, t_theirs, a, b = float("inf"), float("inf"), None, None
    for _ in range(args.repeat):  # alternate, so that a noisy neighbour hurts both alike
        t, a = timed(lambda: ours(docs), 1, args.device)
        t_ours = min(t_ours, t)
        t, b = timed(lambda: theirs(docs), 1, args.device)
        t_theirs = min(t_theirs, t)
    a, b = to_array(a), to_array(b)
    return {"rankstack_docs_per_s": round(len(docs) / t_ours, 1),
            "sentence_transformers_docs_per_s": round(len(docs) / t_theirs, 1),
            "ratio": round(t_theirs / t_ours, 3), "max_abs_diff": float(np.abs(a - b).max()),
            "rankstack_s": round(t_ours, 3), "sentence_transformers_s": round(t_theirs, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None, help="default: fp32 on CPU, fp16 on CUDA")
    p.add_argument("--n", type=int, default=300, help="documents to encode")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch, for both libraries")
    p.add_argument("--model-dir", help="dense model folder (default: all-MiniLM-L6-v2 under shared/models)")
    p.add_argument("--splade-dir", help="SPLADE folder (default: splade-tiny-msmarco under shared/models)")
    p.add_argument("--corpus", type=Path, help="BEIR corpus.jsonl.gz (default: SciFact)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of each; the best counts")
    p.add_argument("--skip", choices=["dense", "splade"], action="append", default=[])
    args = p.parse_args()
    args.dtype = args.dtype or ("fp16" if args.device == "cuda" else "fp32")
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    corpus = args.corpus or next((c for c in CORPORA if c.exists()), None)
    if corpus is None:
        sys.exit("SciFact corpus not found; pass --corpus")
    docs = load_docs(corpus, args.n)

    enc = _encoders()
    import sentence_transformers as st
    import transformers
    report = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device == "cuda" else
              f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads", "dtype": args.dtype, "n": len(docs),
              "batch_size": args.batch_size, "corpus": str(corpus), "torch": torch.__version__,
              "transformers": transformers.__version__, "sentence_transformers": st.__version__}

    if "dense" not in args.skip:
        model_dir = _find("sentence-transformers__all-MiniLM-L6-v2", args.model_dir)
        ours = enc.DenseEncoder(model_dir, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                progress=False)
        theirs = st.SentenceTransformer(model_dir, device=args.device).to(torch_dtype)
        report["dense"] = {"model": model_dir, **compare(
            ours.encode_documents,
            lambda d: theirs.encode(d, batch_size=args.batch_size, convert_to_numpy=True), docs, args, np.asarray)}
        if args.device == "cuda":  # rankstack's own defaults: token-budget batches of up to 256 texts
            ours_default = enc.DenseEncoder(model_dir, device="cuda", dtype=args.dtype, progress=False)
            ours_default.encode_documents(docs[:32])
            t, _ = timed(lambda: ours_default.encode_documents(docs), args.repeat, "cuda")
            report["dense"]["rankstack_default_batching_docs_per_s"] = round(len(docs) / t, 1)
            report["dense"]["ratio_default_batching"] = round(report["dense"]["sentence_transformers_s"] / t, 3)
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
            report["splade"] = {"model": splade_dir, **compare(
                ours.encode_documents,
                lambda d: theirs.encode(d, batch_size=args.batch_size, convert_to_tensor=True),
                docs, args, lambda x: x.toarray() if hasattr(x, "toarray") else x.to_dense().float().cpu().numpy())}
            if args.device == "cuda":
                ours_default = enc.SpladeEncoder(splade_dir, device="cuda", dtype=args.dtype, progress=False)
                ours_default.encode_documents(docs[:32])
                t, _ = timed(lambda: ours_default.encode_documents(docs), args.repeat, "cuda")
                report["splade"]["rankstack_default_batching_docs_per_s"] = round(len(docs) / t, 1)
                report["splade"]["ratio_default_batching"] = round(report["splade"]["sentence_transformers_s"] / t, 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
