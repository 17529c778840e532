"""Training losses for rankers, as plain functions of score tensors.

    pointwise_bce(scores [B], labels [B])                     # relevant or not, one pair at a time
    margin_mse(pos [B], neg [B, N], t_pos [B], t_neg [B, N])  # match a teacher's score margins (Hofstätter et al.)
    info_nce(scores [B, C], labels [B])                       # softmax cross-entropy over candidates
    in_batch_scores(q [B, H], pos [B, H], neg [B, N, H])     # every query against every document of the batch
    kl_divergence(student [B, C], teacher [B, C])             # match a teacher's distribution over candidates
    flops(weights [B, V])                                     # SPLADE's FLOPS regulariser (Paria et al.)
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rankstack.errors import InputError


def pointwise_bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits `scores` against 0/1 (or soft) `labels`, averaged."""
    return F.binary_cross_entropy_with_logits(scores.float(), labels.to(scores.device).float())


def margin_mse(positive: torch.Tensor, negatives: torch.Tensor, teacher_positive: torch.Tensor,
               teacher_negatives: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the student's margins (positive - each negative) and the teacher's.

    positive [B], negatives [B] or [B, N]; the teacher's in the same shapes."""
    if negatives.dim() == 1:
        negatives, teacher_negatives = negatives[:, None], teacher_negatives[:, None]
    student = positive.float()[:, None] - negatives.float()
    teacher = teacher_positive.float()[:, None] - teacher_negatives.float()
    return F.mse_loss(student, teacher.to(student.device))


def info_nce(scores: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of softmax(scores / temperature) against the positive's column (`labels`, default 0),
    averaged over queries. scores [B, C]: each query's candidates."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    if labels is None:
        labels = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores.float() / temperature, labels)


def in_batch_scores(queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None = None,
                    similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [B, B + B*N], labels [B]): each query against every positive and every hard negative of the
    batch; query i's positive is column i. `similarity(q [B, ...], d [M, ...]) -> [B, M]` defaults to the dot
    product of vectors."""
    docs = positives if negatives is None else torch.cat([positives, negatives.flatten(0, 1)])
    similarity = similarity or (lambda q, d: q @ d.T)
    scores = similarity(queries, docs)
    return scores, torch.arange(queries.shape[0], device=scores.device)


def kl_divergence(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) between softmax distributions over each query's candidates, averaged over queries.
    student, teacher [B, C] scores (the teacher's are detached)."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.detach().float().to(student.device) / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)


def flops(weights: torch.Tensor) -> torch.Tensor:
    """SPLADE's FLOPS regulariser: sum over terms of the squared mean absolute weight over the batch.
    weights [B, V]."""
    return weights.float().abs().mean(0).pow(2).sum()
