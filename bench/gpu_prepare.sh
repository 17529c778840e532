#!/usr/bin/env bash
# Prepare, on this machine, what bench/gpu_check.sh needs on a lent GPU machine (which reaches no network):
#   ./.whl/    wheels of the Python packages its image lacks (Python 3.12, x86-64)
#   ./shared/  small copies of the models and data the checks read: all-MiniLM-L6-v2 in float16 (45 MB),
#              SPLADE-tiny in float16, the config-only cross-encoder, TREC DL 2019's BM25 candidates
# Both are git-ignored; name them in the device tool's `carry` (64 MiB a call in all):
#   run(command="bash bench/gpu_check.sh", carry=[".whl", "shared"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${RANKSTACK_SHARED:-../shared}
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl shared && mkdir -p .whl shared/models shared/data/trec-dl-2019-passage
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl orjson PyStemmer ir-measures pytrec-eval-terrier cwl-eval
"$PY" - "$SRC" <<'PYEOF'
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
src, out = Path(sys.argv[1]) / "models", Path("shared/models")
for name in ("sentence-transformers__all-MiniLM-L6-v2", "splade-tiny-msmarco"):
    shutil.copytree(src / name, out / name, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    for f in (src / name).rglob("model.safetensors"):
        half = {k: v.half() if v.is_floating_point() else v for k, v in load_file(f).items()}
        save_file(half, out / name / f.relative_to(src / name), metadata={"format": "pt"})
shutil.copytree(src / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only",
                out / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only")
PYEOF
cp "$SRC"/data/trec-dl-2019-passage/{bm25_top100.candidates.tsv,corpus.jsonl.gz,queries.jsonl} shared/data/trec-dl-2019-passage/
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/shared/' .git/info/exclude 2>/dev/null || echo '/shared/' >> .git/info/exclude
du -sh .whl shared
