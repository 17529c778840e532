#!/usr/bin/env bash
# Every CUDA test and the GPU benchmarks in one command, on a lent GPU machine (prepare with bench/gpu_prepare.sh):
#   run(command="bash bench/gpu_check.sh", carry=[".whl", "shared"], timeout_s=540)
# Figures go to $OUT/gpu_check.txt (bench/out/gpu_check.txt elsewhere); the whole log to $OUT/gpu_check.log.
# GPU FAISS is checked only where faiss with GPU support imports: faiss-gpu-cu12's wheel and the CUDA 12 libraries
# it needs exceed what a call carries, and the lent image has neither.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
REPORT="$OUT/gpu_check.txt"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RANKSTACK_SHARED_MODELS="$PWD/shared/models"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD/src:/tmp/site"
else
    export PYTHONPATH="$PWD/src"
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$REPORT"
step() {  # step NAME SECONDS COMMAND...: run one check within a time limit, note its outcome in the report
    local name=$1 limit=$2; shift 2
    echo "== $name" | tee -a "$REPORT"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/step.out" 2>&1
    local rc=$?
    cat "$OUT/step.out"
    tail -n 3 "$OUT/step.out" | tee -a "$REPORT"
    echo "-- $name: exit $rc in $((SECONDS - start)) s" | tee -a "$REPORT"
}
step "CUDA tests" 240 python3 -m pytest -q -p no:cacheprovider tests/encoders/test_cuda.py \
    tests/index/test_sparse_gpu.py tests/index/test_dense_index.py -k "cuda or gpu" -rs
step "encoders vs sentence-transformers, fp16" 150 python3 bench/bench_encoders.py --device cuda --dtype fp16 \
    --n 2000 --model-dir shared/models/sentence-transformers__all-MiniLM-L6-v2 \
    --splade-dir shared/models/splade-tiny-msmarco
step "cross-encoder vs sentence-transformers, fp16" 120 python3 bench/bench_cross_encoder.py --device cuda \
    --dtype fp16 --n 1000
step "sparse matmul on CUDA" 60 python3 - <<'PYEOF'
import time, numpy as np, scipy.sparse as sp, torch
from rankstack.index.search import SparseQueries
from rankstack.index.sparse_gpu import SparseMatmulScorer
d = sp.random(200_000, 30522, density=40 / 30522, format="csr", random_state=0, dtype=np.float32)
q = sp.random(1000, 30522, density=20 / 30522, format="csr", random_state=1, dtype=np.float32)
batch = SparseQueries.over_columns(q, 30522)
for device in ("cpu", "cuda"):
    scorer = SparseMatmulScorer(d, device=device)
    scorer.search(SparseQueries.over_columns(q[:50], 30522), 10)
    t = time.perf_counter(); hits = scorer.search(batch, 10)
    print(f"{device}: {len(hits) / (time.perf_counter() - t):,.0f} queries/s over 200,000 documents, k=10")
PYEOF
if python3 -c "import faiss, sys; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)" 2>/dev/null; then
    step "GPU FAISS" 120 python3 bench/bench_dense.py speed --n 100000 --queries 1000 --rounds 1
else
    echo "== GPU FAISS: skipped (no faiss with GPU support on this machine)" | tee -a "$REPORT"
fi
echo "report: $REPORT"
