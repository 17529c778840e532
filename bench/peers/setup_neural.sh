#!/usr/bin/env bash
# (Re)create the neural peers virtualenv (bench/.venv-neural-peers) for bench_encoders.py, bench_cross_encoder.py
# and bench_late.py: sentence-transformers with its ONNX / OpenVINO backends, and colbert-ai.
# Idempotent; --no-deps: every package is pinned in requirements-neural.txt, so nothing unpinned (such as a CUDA
# torch) can be pulled in.
# Usage: bash bench/peers/setup_neural.sh      (or NEURAL_PEERS_VENV=/some/dir bash bench/peers/setup_neural.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NEURAL_PEERS_VENV:-$here/../.venv-neural-peers}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-deps -r "$here/requirements-neural.txt"
"$venv/bin/python" - <<'PY'
import colbert, onnxruntime, openvino, optimum.onnxruntime, sentence_transformers, torch, transformers
assert torch.version.cuda is None, f"CUDA torch {torch.__version__}: want the CPU wheel"
print("neural peers venv ok: sentence-transformers", sentence_transformers.__version__, "transformers",
      transformers.__version__, "onnxruntime", onnxruntime.__version__, "openvino", openvino.__version__)
PY
