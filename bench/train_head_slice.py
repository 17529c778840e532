"""Why the SciFact cross-encoder's loss stayed at ln 4, on a slice that trains in minutes: all-MiniLM-L6-v2's
weights with a new one-logit head, InfoNCE over the positive and 3 mined negatives, 12 train examples for 6 epochs
(18 steps of 4), 96 tokens a pair, then the held-out MRR of the positive among its 4 candidates (24 other
examples; 0.52 is chance) and the mean spread (std) of their logits. Variants: which layers take the head's
learning rate (the classifier alone, as before the fix, or the classifier and the pooler before it) and the
encoder's learning rate.

    PYTHONPATH=src python bench/train_head_slice.py A B C D      (needs bench/out/train/*/examples.jsonl)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

from rankstack.datasets import load  # noqa: E402
from rankstack.rerank.texts import CorpusTexts  # noqa: E402
from rankstack.train.examples import Example, load_examples  # noqa: E402
from rankstack.train.models import build_model  # noqa: E402
from rankstack.train.objectives import Objective  # noqa: E402
from rankstack.train.trainer import TrainingArguments, train  # noqa: E402

MODEL = Path(os.environ.get("MODELS", REPO.parent / "shared" / "models")) / "sentence-transformers__all-MiniLM-L6-v2"
EXAMPLES = REPO / "bench" / "out" / "train" / "minilm-filtered" / "examples.jsonl"
#: variant -> (encoder learning rate, head learning rate, the layers that take the head's rate)
VARIANTS = {"A": (3e-5, 1e-3, ("model.classifier.",)),
            "B": (3e-5, 1e-3, ("model.classifier.", "model.bert.pooler.")),
            "C": (1e-4, 1e-3, ("model.classifier.",)),
            "D": (1e-4, 1e-3, ("model.classifier.", "model.bert.pooler."))}


def held_out(model, held, docs) -> tuple[float, float]:
    """(MRR of the positive among its candidates, mean std of the candidates' logits)."""
    model.eval()
    with torch.no_grad():
        pairs = [(e.query, docs[d]) for e in held for d in [e.positive, *e.negatives]]
        s = torch.cat([model.score_pairs(pairs[i:i + 32]) for i in range(0, len(pairs), 32)]).view(len(held), -1)
    model.train()
    rank = (s > s[:, :1]).sum(1) + 1
    return float((1.0 / rank.float()).mean()), float(s.std(1).mean())


def main() -> None:
    torch.set_num_threads(2)
    corpus = load("beir/scifact/train").corpus
    docs = {d.id: d.contents for d in corpus}
    examples = [Example(e.qid, e.query, e.positive, e.negatives[:3]) for e in load_examples(EXAMPLES)]
    slice_, held = examples[:12], examples[100:124]
    for i, variant in enumerate(sys.argv[1:] or list(VARIANTS)):
        lr, head_lr, heads = VARIANTS[variant]
        model = build_model("cross-encoder", MODEL, max_length=96)
        if i == 0:
            print("untrained: held-out MRR %.3f, logit spread %.4f" % held_out(model, held, docs), flush=True)
        model.head_prefixes = heads
        start = time.perf_counter()
        report = train(model, slice_, CorpusTexts(corpus), Objective("infonce", negatives=3, in_batch=False),
                       TrainingArguments(epochs=6, batch_size=4, learning_rate=lr, head_learning_rate=head_lr,
                                         warmup=0.1, checkpoint_every=0, progress=False),
                       Path(tempfile.mkdtemp()) / "model")
        mrr, spread = held_out(model, held, docs)
        print(f"{variant}: encoder lr {lr:g}, head lr {head_lr:g} on {', '.join(heads)}: loss per 10 steps "
              f"{[round(x, 3) for x in report.losses]}, {time.perf_counter() - start:.0f}s; held-out MRR {mrr:.3f}, "
              f"logit spread {spread:.4f}", flush=True)


if __name__ == "__main__":
    main()
