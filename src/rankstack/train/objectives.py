"""What a training step minimises: a loss (rankstack.train.losses) applied to a model's scores of a batch of
examples, plus SPLADE's FLOPS regulariser.

    Objective("infonce", negatives=1, in_batch=True)           # contrastive, in-batch and hard negatives
    Objective("kl", negatives=7)                                 # distil a teacher's distribution (needs scores)
    Objective("infonce", flops_query=5e-4, flops_document=3e-4, flops_warmup=200)   # SPLADE
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rankstack.errors import InputError
from rankstack.rerank.texts import Texts
from rankstack.train import losses
from rankstack.train.examples import Example
from rankstack.train.models import Ranker

LOSSES = ("bce", "margin-mse", "infonce", "kl")
TEACHER_LOSSES = ("margin-mse", "kl")


@dataclass
class Objective:
    """`loss` over each example's positive and `negatives` of its hard negatives (drawn afresh each epoch, seeded);
    for bi-encoders with `in_batch`, InfoNCE also counts every other document of the batch as a negative.
    `temperature` None takes the model's default (0.05 for normalised dense vectors, else 1). FLOPS weights
    grow quadratically to their value over the first `flops_warmup` steps, as in SPLADE."""

    loss: str = "infonce"
    negatives: int = 1
    in_batch: bool = True
    temperature: float | None = None
    flops_query: float = 0.0
    flops_document: float = 0.0
    flops_warmup: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r} (expected one of {', '.join(LOSSES)})")
        if self.negatives < 0 or (self.negatives == 0 and self.loss != "infonce"):
            raise InputError(f"loss {self.loss!r} needs at least one negative per example, got {self.negatives}")
        if self.negatives == 0 and not self.in_batch:
            raise InputError("infonce without hard negatives needs in_batch=True")
        if min(self.flops_query, self.flops_document, self.flops_warmup) < 0:
            raise InputError("FLOPS weights and warm-up must be >= 0")

    @property
    def needs_teacher(self) -> bool:
        return self.loss in TEACHER_LOSSES

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, model: Ranker, examples: Sequence[Example]) -> None:
        """InputError when the examples cannot feed this objective (no negatives, no teacher scores)."""
        if (self.flops_query or self.flops_document) and model.kind != "splade":
            raise InputError(f"the FLOPS regulariser applies to SPLADE models, not {model.kind!r}")
        if self.negatives and any(not e.negatives for e in examples):
            raise InputError("some examples have no negatives; mine them first (rankstack.train.mining)")
        if self.needs_teacher and any(e.teacher is None for e in examples):
            raise InputError(f"loss {self.loss!r} needs teacher scores; attach them "
                             "(rankstack.train.mining.attach_teacher_scores)")

    def pick_negatives(self, example: Example, rng: np.random.Generator) -> list[str]:
        pool = example.negatives
        if len(pool) <= self.negatives:
            return [pool[i % len(pool)] for i in range(self.negatives)] if pool else []
        return [pool[i] for i in rng.choice(len(pool), self.negatives, replace=False)]

    def __call__(self, model: Ranker, batch: Sequence[Example], texts: Texts, negatives: Sequence[Sequence[str]],
                 step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, its parts) of one batch; `negatives[i]`: the hard negatives drawn for `batch[i]`."""
        n = self.negatives
        doc_ids = [e.positive for e in batch] + [d for negs in negatives for d in negs]
        unique = list(dict.fromkeys(doc_ids))
        text_of = dict(zip(unique, texts.texts(unique)))
        teacher = None
        if self.needs_teacher:
            teacher = torch.tensor([e.teacher_scores([e.positive, *negs]) for e, negs in zip(batch, negatives)],
                                   device=model.device)
        parts: dict[str, float] = {}
        temperature = self.temperature or model.default_temperature
        b = len(batch)
        if not model.bi_encoder:
            pairs = [(e.query, text_of[d]) for e, negs in zip(batch, negatives) for d in [e.positive, *negs]]
            scores = model.score_pairs(pairs).view(b, 1 + n)
            loss = self._loss(scores, teacher, temperature)
        else:
            q = model.encode_queries([e.query for e in batch])
            d = model.encode_documents([text_of[i] for i in doc_ids])
            every = model.similarity(q, d)  # [b, b + b*n]: positives, then each example's negatives
            if self.loss == "infonce" and self.in_batch:
                loss = losses.info_nce(every.masked_fill(_same_query(batch, doc_ids, every.device), float("-inf")),
                                       torch.arange(b, device=every.device), temperature)
            else:
                own = torch.cat([every[torch.arange(b), torch.arange(b)][:, None],
                                 every[:, b:].view(b, b, n)[torch.arange(b), torch.arange(b)]], dim=1)
                loss = self._loss(own, teacher, temperature)
            if self.flops_query or self.flops_document:
                ramp = 1.0 if not self.flops_warmup else min(1.0, (step / self.flops_warmup) ** 2)
                regular = ramp * (self.flops_query * losses.flops(q) + self.flops_document * losses.flops(d))
                parts["flops"] = float(regular.detach())
                loss = loss + regular
        parts["loss"] = float(loss.detach())
        return loss, parts

    def _loss(self, scores: torch.Tensor, teacher: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """The loss of scores [b, 1 + n] (positive first) against the labels or the teacher's scores."""
        if self.loss == "bce":
            labels = torch.zeros_like(scores)
            labels[:, 0] = 1
            return losses.pointwise_bce(scores.flatten() / temperature, labels.flatten())
        if self.loss == "infonce":
            return losses.info_nce(scores, temperature=temperature)
        if self.loss == "margin-mse":
            return losses.margin_mse(scores[:, 0], scores[:, 1:], teacher[:, 0], teacher[:, 1:])
        return losses.kl_divergence(scores, teacher, temperature)


def _same_query(batch: Sequence[Example], doc_ids: Sequence[str], device: torch.device) -> torch.Tensor:
    """[b, len(doc_ids)]: True where a column holds, besides the row's own positive (column i), another example of
    the same query or the row's positive again: in-batch columns that are no negatives."""
    mask = torch.zeros(len(batch), len(doc_ids), dtype=torch.bool)
    for i, e in enumerate(batch):
        for c, d in enumerate(doc_ids):
            if c != i and (d == e.positive or (c < len(batch) and batch[c].qid == e.qid)):
                mask[i, c] = True
    return mask.to(device)
