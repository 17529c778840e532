#!/usr/bin/env python
"""A worker that times sentence-transformers' own backends (torch, ONNX, ONNX int8, OpenVINO) for
bench/bench_encoders.py and bench/bench_cross_encoder.py, which start it and alternate with rankstack's runs.

It runs in the neural peers virtualenv (bench/peers/setup_neural.sh: sentence-transformers with optimum-onnx and
optimum-intel, which need transformers < 4.58, so not in the project's environment). Exports happen offline, into
a copy of the model folder under --work. Protocol, one JSON object per line:

    parent -> worker: {"run": "onnx-int8"}            worker -> parent: {"run": ..., "wall_s": .., "cpu_s": .., "out": path}
    parent -> worker: {"quit": true}

The texts (or pairs) come from --inputs (a JSON list); each result is saved as .npy under --work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: Backend names this worker knows: what sentence-transformers loads, and the ONNX file it reads.
BACKENDS = {"torch": ("torch", None), "onnx": ("onnx", "onnx/model.onnx"),
            "onnx-int8": ("onnx", "onnx/model_qint8_avx2.onnx"), "openvino": ("openvino", "openvino/openvino_model.xml")}


def prepare(kind: str, model: Path, work: Path, backends: list[str], max_length: int | None, threads: int):
    """Copy the model folder under `work` (exports write into it) and load one model per backend, each on
    `threads` CPU threads."""
    import onnxruntime
    import sentence_transformers as st

    session = onnxruntime.SessionOptions()
    session.intra_op_num_threads, session.inter_op_num_threads = threads, 1
    threading = {"onnx": {"session_options": session}, "openvino": {"ov_config": {"INFERENCE_NUM_THREADS": threads}},
                 "torch": {}}

    folder = work / f"{kind}-model"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh copy: exports of another model must not be reused
    shutil.copytree(model, folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
    cls = st.SentenceTransformer if kind == "dense" else st.CrossEncoder
    extra = {} if kind == "dense" else {"max_length": max_length}
    models = {}
    for name in backends:
        backend, file_name = BACKENDS[name]
        if name == "onnx-int8":
            if not (folder / file_name).exists():
                base = cls(str(folder), device="cpu", backend="onnx", **extra)
                # (its "avx2" config names the file after the weights' type: model_quint8_avx2.onnx)
                st.export_dynamic_quantized_onnx_model(base, "avx2", str(folder), file_suffix="qint8_avx2")
            if not (folder / file_name).exists():  # never fall back on the fp32 model.onnx silently
                raise SystemExit(f"the int8 export did not write {folder / file_name}")
        options = {**threading[backend], **({"file_name": file_name} if file_name and (folder / file_name).exists()
                                            else {})}
        models[name] = cls(str(folder), device="cpu", backend=backend, **extra,
                           **({"model_kwargs": options} if options else {}))
    return models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=["dense", "cross-encoder"], required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--inputs", type=Path, required=True, help="JSON list of texts (dense) or [query, doc] pairs")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--backends", nargs="+", default=list(BACKENDS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None)
    args = p.parse_args()
    out = os.fdopen(os.dup(1), "w")  # libraries may print to stdout: keep the real one for the replies
    os.dup2(2, 1)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = json.loads(args.inputs.read_text())
    models = prepare(args.kind, args.model, args.work, args.backends, args.max_length, args.threads)

    def run(name: str) -> np.ndarray:
        m = models[name]
        if args.kind == "dense":
            return m.encode(inputs, batch_size=args.batch_size, convert_to_numpy=True)
        return m.predict([tuple(x) for x in inputs], batch_size=args.batch_size, show_progress_bar=False)

    for name, m in models.items():  # warm-up
        m.encode(inputs[:32]) if args.kind == "dense" else m.predict([tuple(x) for x in inputs[:32]])
    import sentence_transformers
    print(json.dumps({"ready": list(models), "sentence_transformers": sentence_transformers.__version__}), file=out,
          flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        name = msg["run"]
        t, c = time.perf_counter(), time.process_time()
        result = np.asarray(run(name), dtype=np.float32)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        path = args.work / f"{name}.npy"
        np.save(path, result)
        print(json.dumps({"run": name, "wall_s": wall, "cpu_s": cpu, "out": str(path)}), file=out, flush=True)


if __name__ == "__main__":
    main()



class Worker:
    """The parent's side: starts this script in the peers virtualenv and times one backend per `run` call."""

    def __init__(self, python: str, kind: str, model: str | Path, inputs: list, work: Path, backends: list[str],
                 threads: int, batch_size: int, max_length: int | None = None):
        from peers.worker import JsonWorker

        work.mkdir(parents=True, exist_ok=True)
        (work / "inputs.json").write_text(json.dumps(inputs))
        cmd = [python, str(Path(__file__).resolve()), "--kind", kind, "--model", str(model), "--inputs",
               str(work / "inputs.json"), "--work", str(work), "--threads", str(threads), "--batch-size",
               str(batch_size), "--backends", *backends] + (["--max-length", str(max_length)] if max_length else [])
        self.worker = JsonWorker(cmd, {"OMP_NUM_THREADS": str(threads)})
        self.backends, self.version = self.worker.first["ready"], self.worker.first["sentence_transformers"]

    def run(self, name: str) -> tuple[float, float, np.ndarray]:
        """(wall s, CPU s, result) of one timed call of backend `name` in the worker."""
        reply = self.worker.ask({"run": name})
        return reply["wall_s"], reply["cpu_s"], np.load(reply["out"])

    def close(self) -> None:
        self.worker.close()
