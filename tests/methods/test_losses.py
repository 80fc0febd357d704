"""SFT's and vision pretraining's losses (``sft_loss``, ``vision_loss``) against hand computations."""

import math

import pytest
import torch

from tether.methods.sft_loss import next_token_loss
from tether.methods.vision_loss import multilabel_loss
from tether.models.batch import ResponseLogProbs


def log_probs(per_token: list[list[float]], mask: list[list[bool]], predicted: list[list[int]]):
    """``ResponseLogProbs`` whose logits make ``predicted`` the argmax at each position (vocabulary of 4)."""
    per_token, mask = torch.tensor(per_token), torch.tensor(mask)
    logits = torch.zeros(len(predicted), len(predicted[0]) + 1, 4)
    for row, tokens in enumerate(predicted):
        for position, token in enumerate(tokens):
            logits[row, position, token] = 1.0
    return ResponseLogProbs(per_token * mask, mask, (per_token * mask).sum(dim=1), logits)


def test_next_token_loss_per_token_and_per_sample_by_hand():
    # two rows: 1 response token (log p = -1) and 3 (log p = -2, -4, -6); the model predicts 2 of 4 right
    result = log_probs(
        [[-1.0, 0.0, 0.0], [-2.0, -4.0, -6.0]],
        [[True, False, False], [True, True, True]],
        [[1, 0, 0], [2, 0, 3]],
    )
    input_ids = torch.tensor([[0, 1, 0, 0], [0, 2, 2, 2]])
    by_token = next_token_loss([(result, input_ids)], "token")
    assert by_token["loss"].item() == pytest.approx((1 + 2 + 4 + 6) / 4)
    assert by_token["metrics"]["token_accuracy"].item() == pytest.approx(2 / 4)  # (0,1) and (1,1) right
    by_sample = next_token_loss([(result, input_ids)], "sample")
    assert by_sample["loss"].item() == pytest.approx((1 / 1 + 12 / 3) / 2)
    # two forwards (a split batch) sum exactly like one
    first, second = (log_probs([p], [m], [t]) for p, m, t in zip(
        [[-1.0, 0.0, 0.0], [-2.0, -4.0, -6.0]], [[True, False, False], [True, True, True]], [[1, 0, 0], [2, 0, 3]]
    ))  # fmt: skip
    split = next_token_loss([(first, input_ids[:1]), (second, input_ids[1:])], "token")
    assert split["loss"].item() == pytest.approx(by_token["loss"].item())


def test_multilabel_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    loss, metrics = multilabel_loss(logits, targets)
    expected = (bce(2.0, 1) + bce(-1.0, 0) + bce(0.5, 1) + bce(0.5, 0)) / 4
    assert loss.item() == pytest.approx(expected)
    assert metrics["exact_match"].item() == pytest.approx(0.5)  # row 2 says yes to its second label
