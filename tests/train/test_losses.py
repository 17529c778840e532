"""Each loss against a value computed by hand (the arithmetic is spelled out in each test)."""

import math

import pytest
import torch

from rankstack.errors import InputError
from rankstack.train import losses


def test_pointwise_bce():
    # -log(sigmoid(0)) = log 2 for the positive; -log(1 - sigmoid(2)) = log(1 + e^2) for the negative
    expected = (math.log(2) + math.log(1 + math.e ** 2)) / 2
    value = losses.pointwise_bce(torch.tensor([0.0, 2.0]), torch.tensor([1, 0]))
    assert value.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(1.4100380, abs=1e-6)


def test_margin_mse():
    # student margins 3-1=2, 3-2=1; teacher 5-4=1, 5-1=4; squared errors 1 and 9
    value = losses.margin_mse(torch.tensor([3.0]), torch.tensor([[1.0, 2.0]]), torch.tensor([5.0]),
                              torch.tensor([[4.0, 1.0]]))
    assert value.item() == pytest.approx(5.0)
    one = losses.margin_mse(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([5.0]), torch.tensor([4.0]))
    assert one.item() == pytest.approx(1.0)


def test_info_nce_and_temperature():
    # -log(e^2 / (e^2 + 1 + 1)) = log(1 + 2 e^-2)
    assert losses.info_nce(torch.tensor([[2.0, 0.0, 0.0]])).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)))
    # temperature 0.5 doubles the scores: log(1 + 2 e^-4)
    value = losses.info_nce(torch.tensor([[2.0, 0.0, 0.0]]), temperature=0.5)
    assert value.item() == pytest.approx(math.log(1 + 2 * math.exp(-4)), abs=1e-7)
    # the positive in column 1
    value = losses.info_nce(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(-1)))
    with pytest.raises(InputError, match="temperature"):
        losses.info_nce(torch.zeros(1, 2), temperature=0)


def test_in_batch_scores_with_hard_negatives():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    neg = torch.tensor([[[0.0, 1.0]], [[2.0, 0.0]]])
    scores, labels = losses.in_batch_scores(q, pos, neg)
    # columns: positive 0, positive 1, negative of query 0, negative of query 1
    assert scores.tolist() == [[1.0, 1.0, 0.0, 2.0], [0.0, 1.0, 1.0, 0.0]]
    assert labels.tolist() == [0, 1]
    e = math.e
    q0 = -math.log(e / (e + e + 1 + e ** 2))
    q1 = -math.log(e / (1 + e + e + 1))
    assert losses.info_nce(scores, labels).item() == pytest.approx((q0 + q1) / 2, abs=1e-6)


def test_kl_divergence_to_teacher():
    # teacher softmax [3/4, 1/4], student [1/2, 1/2]: 3/4 log(3/2) + 1/4 log(1/2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    value = losses.kl_divergence(torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3), 0.0]]))
    assert value.item() == pytest.approx(expected, abs=1e-6)
    same = losses.kl_divergence(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.0]]))
    assert same.item() == pytest.approx(0, abs=1e-7)
    # temperature 2 halves both: student uniform, teacher softmax([log 3 / 2, 0]) = [sqrt3, 1] / (sqrt3 + 1)
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    value = losses.kl_divergence(torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3), 0.0]]), temperature=2)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_flops():
    # mean |w| per term over the batch: [2, 0, 1]; squared and summed: 4 + 0 + 1
    assert losses.flops(torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])).item() == pytest.approx(5.0)
    assert losses.flops(torch.tensor([[-1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(1.0)


def test_losses_have_gradients():
    s = torch.tensor([[1.0, 0.5, -0.5]], requires_grad=True)
    losses.info_nce(s).backward()
    assert s.grad is not None and s.grad[0, 0] < 0 < s.grad[0, 1]
