"""What precision OpenVINO computes in on this CPU: all-MiniLM-L6-v2's transformer converted with openvino's own
`convert_model`, compiled with the CPU plugin's default inference precision, with it forced to f32 and forced to
bf16, against torch float32 on the same padded batches (the first N SciFact documents, sorted by length, batches of
32, 2 threads). Prints, for each, the largest absolute difference of the hidden states from torch float32 (over
real tokens) and the wall time, best of --repeat. When the default's difference equals the bf16 one, OpenVINO's
default is bf16 here (its CPU plugin picks bf16 where the CPU has bf16 units), which is why sentence-transformers'
OpenVINO backend is so much faster than its torch path on such CPUs (README, "Neural stages against their peers").
Run it in the neural peers venv (bench/peers/setup_neural.sh), which has openvino:

    bench/.venv-neural-peers/bin/python bench/peers/openvino_precision.py [--n 300] [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from transformers import AutoModel, AutoTokenizer

SHARED = Path(__file__).resolve().parents[3] / "shared"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(SHARED / "models" / "sentence-transformers__all-MiniLM-L6-v2"))
    p.add_argument("--corpus", default=str(SHARED / "data" / "scifact" / "corpus.jsonl.gz"))
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    texts = []
    with gzip.open(args.corpus, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            texts.append(f"{d.get('title') or ''} {d['text']}".strip())
            if len(texts) == args.n:
                break
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()
    ids = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    order = np.argsort([len(t) for t in ids], kind="stable")
    batches = []
    for start in range(0, len(ids), 32):
        rows = [ids[i] for i in order[start:start + 32]]
        width = max(map(len, rows))
        input_ids, mask = np.zeros((len(rows), width), np.int64), np.zeros((len(rows), width), np.int64)
        for r, row in enumerate(rows):
            input_ids[r, :len(row)], mask[r, :len(row)] = row, 1
        batches.append((input_ids, mask))

    def run_torch():
        with torch.inference_mode():
            return [model(input_ids=torch.from_numpy(a), attention_mask=torch.from_numpy(m)).last_hidden_state.numpy()
                    for a, m in batches]

    example = {"input_ids": torch.ones(2, 16, dtype=torch.long), "attention_mask": torch.ones(2, 16, dtype=torch.long)}
    with torch.no_grad():
        converted = ov.convert_model(model, example_input=example)
    core = ov.Core()
    runners = {"torch float32": run_torch}
    for name, hint in (("openvino default", None), ("openvino f32", "f32"), ("openvino bf16", "bf16")):
        config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        compiled = core.compile_model(converted, "CPU", config)
        request = compiled.create_infer_request()
        runners[name] = (lambda c, r: lambda: [r.infer({"input_ids": a, "attention_mask": m})[c.outputs[0]].copy()
                                               for a, m in batches])(compiled, request)
    reference = run_torch()
    best = {name: float("inf") for name in runners}
    outputs = {}
    for _ in range(args.repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            outputs[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    report = {"cpu_inference_precision_default": str(core.get_property("CPU", "INFERENCE_PRECISION_HINT")),
              "documents": len(texts), "threads": args.threads}
    for name in runners:
        diff = max(float(np.abs(x - y)[m.astype(bool)].max()) for x, y, (_, m) in zip(outputs[name], reference, batches))
        report[name] = {"seconds": round(best[name], 2), "speed_vs_torch": round(best["torch float32"] / best[name], 2),
                        "max_abs_diff_vs_torch": diff}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
