#!/usr/bin/env bash
# (Re)create the fast-plaid virtualenv (bench/.venv-fast-plaid) for bench_late.py's fast-plaid peer
# (bench/peers/fast_plaid_worker.py), then check that fast-plaid builds and searches a small random index on the CPU.
# Idempotent; --no-deps: every package is pinned in requirements-fast-plaid.txt (torch 2.11.0 from PyPI, a CUDA
# build, with its nvidia-* wheels: about 3 GB).
# Usage: bash bench/peers/setup_fast_plaid.sh      (or FAST_PLAID_VENV=/some/dir bash bench/peers/setup_fast_plaid.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FAST_PLAID_VENV:-$here/../.venv-fast-plaid}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-deps -r "$here/requirements-fast-plaid.txt"
"$venv/bin/python" - <<'PY'
import tempfile
from importlib.metadata import version

import torch
from fast_plaid.search import FastPlaid

torch.manual_seed(0)
docs = [torch.nn.functional.normalize(torch.randn(int(n), 64), dim=-1) for n in torch.randint(8, 40, (200,))]
with tempfile.TemporaryDirectory() as index:
    searcher = FastPlaid(index=index, device="cpu")
    searcher.create(documents_embeddings=docs, nbits=2)
    hits = searcher.search(docs[7][None], top_k=3, n_processes=1, show_progress=False)[0]
assert hits[0][0] == 7, hits  # a document is its own best match
print("fast-plaid venv ok: fast-plaid", version("fast_plaid"), "torch", torch.__version__)
PY
