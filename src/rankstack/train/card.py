"""The model card (README.md) saved with a trained model: what it is, how to load it, its data, negatives, loss,
training run and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: How each kind is loaded, by rankstack and by sentence-transformers.
_LOADING = {
    "cross-encoder": ("from rankstack.rerank import CrossEncoder\n"
                      "stage = first_stage % 100 >> CrossEncoder({path!r}, texts)",
                      "from sentence_transformers import CrossEncoder\nCrossEncoder({path!r}).predict(pairs)"),
    "dense": ("from rankstack.retrieve import Dense\nDense.build(corpus, 'index', {path!r})",
              "from sentence_transformers import SentenceTransformer\nSentenceTransformer({path!r}).encode(texts)"),
    "splade": ("from rankstack.encoders import SpladeEncoder\nfrom rankstack.retrieve import LearnedSparse\n"
               "LearnedSparse.build(corpus, 'index', SpladeEncoder({path!r}))",
               "from sentence_transformers import SparseEncoder\nSparseEncoder({path!r}).encode(texts)"),
    "colbert": ("from rankstack.encoders import MultiVectorEncoder\nfrom rankstack.retrieve import LateInteraction\n"
                "LateInteraction.build(corpus, 'index', MultiVectorEncoder({path!r}), store_vectors='float16', "
                "rescore=True)", None),
}
_LIBRARY = {"cross-encoder": "sentence-transformers", "dense": "sentence-transformers",
            "splade": "sentence-transformers", "colbert": "transformers"}


def _block(data: Any) -> str:
    return "```json\n" + json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n```"


def write_model_card(path: str | Path, info: dict[str, Any]) -> Path:
    """Write path/README.md from `info`: keys model (describe()), data, negatives, objective, training (the
    TrainingReport and arguments), evaluation (a table as text) and recipe (where it came from); missing ones are
    left out."""
    path = Path(path)
    model = info.get("model", {})
    kind = model.get("kind", "")
    rankstack_code, st_code = _LOADING.get(kind, (None, None))
    start = model.get("start", "")
    lines = ["---", f"library_name: {_LIBRARY.get(kind, 'transformers')}", "tags:", "- rankstack", f"- {kind}",
             f"base_model: {start}", "---", "", f"# {path.name}", "",
             f"A {kind} model trained with rankstack from `{start}`."]
    if info.get("recipe"):
        lines += ["", f"Recipe: `{info['recipe']}` (`rankstack train {info['recipe']}` reproduces it)."]
    lines += ["", "## Loading", ""]
    if rankstack_code:
        lines += ["```python", rankstack_code.format(path=str(path)), "```"]
    if st_code:
        lines += ["", "```python", st_code.format(path=str(path)), "```"]
    lines += ["", "## Model", "", _block(model)]
    for title, key in (("Data", "data"), ("Negatives", "negatives"), ("Loss", "objective")):
        if info.get(key) is not None:
            lines += ["", f"## {title}", "", _block(info[key])]
    training = info.get("training")
    if training:
        lines += ["", "## Training", "",
                  f"{training.get('steps')} optimizer steps, {training.get('examples_seen')} examples, "
                  f"{training.get('seconds')} s of wall time ({training.get('cpu_seconds')} s of CPU time) on "
                  f"{training.get('hardware')}."]
        if training.get("resumed_from"):
            lines.append(f"Resumed from the checkpoints of steps {training['resumed_from']}.")
        if training.get("arguments"):
            lines += ["", _block(training["arguments"])]
        if training.get("losses"):
            losses = training["losses"]
            lines += ["", f"Mean loss per 10 steps: first {losses[0]:.4f}, last {losses[-1]:.4f}."]
    if info.get("evaluation"):
        lines += ["", "## Figures", "", "```", str(info["evaluation"]).rstrip(), "```"]
    path.mkdir(parents=True, exist_ok=True)
    out = path / "README.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
