import math

import pytest
import torch
import torch.nn.functional as F

from tether.methods.hacl_loss import LearnableTemperature, hacl_contrastive_loss


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _hand_loss(image, text, negative, has_negative, tau, both_sides):
    """Direct loops over python lists: the definition, written out."""
    n = len(image)
    loss_v = 0.0
    for i in range(n):
        row = [_dot(image[i], text[j]) / tau for j in range(n)]
        row += [_dot(image[i], negative[k]) / tau for k in range(n) if has_negative[k]]
        loss_v += _ce(row, i)
    loss_t = 0.0
    for j in range(n):
        row = [_dot(text[j], image[i]) / tau for i in range(n)]
        if both_sides and has_negative[j]:
            row.append(_dot(negative[j], image[j]) / tau)
        loss_t += _ce(row, j)
    return loss_v / n, loss_t / n


@pytest.fixture
def embeddings():
    g = torch.Generator().manual_seed(0)
    image, text, negative = (
        F.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=-1) for _ in range(3)
    )
    return image, text, negative, torch.tensor([True, False, True, True])


@pytest.mark.parametrize("both_sides", [False, True])
def test_matches_hand_computation(embeddings, both_sides):
    image, text, negative, has = embeddings
    loss_v, loss_t = hacl_contrastive_loss(
        image, text, negative, has, torch.tensor(0.1, dtype=torch.float64), negatives_both_sides=both_sides
    )
    want_v, want_t = _hand_loss(
        image.tolist(), text.tolist(), negative.tolist(), has.tolist(), 0.1, both_sides
    )
    assert loss_v.item() == pytest.approx(want_v, rel=1e-9)
    assert loss_t.item() == pytest.approx(want_t, rel=1e-9)


def test_negatives_are_asymmetric_by_default(embeddings):
    image, text, negative, has = embeddings
    tau = torch.tensor(0.1, dtype=torch.float64)
    no_neg = torch.zeros(4, dtype=torch.bool)
    v_with, t_with = hacl_contrastive_loss(image, text, negative, has, tau)
    v_without, t_without = hacl_contrastive_loss(image, text, negative, no_neg, tau)
    assert v_with.item() > v_without.item()  # extra candidates only raise the image→text loss
    assert t_with.item() == pytest.approx(t_without.item(), rel=1e-12)  # text→image untouched
    _, t_both = hacl_contrastive_loss(image, text, negative, has, tau, negatives_both_sides=True)
    assert t_both.item() > t_without.item()
    # no negatives at all: the plain symmetric CLIP loss
    logits = image @ text.T / 0.1
    target = torch.arange(4)
    assert v_without.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-12)
    assert t_without.item() == pytest.approx(F.cross_entropy(logits.T, target).item(), rel=1e-12)


def test_masked_negative_rows_do_not_matter(embeddings):
    image, text, negative, has = embeddings
    tau = torch.tensor(0.2, dtype=torch.float64)
    changed = negative.clone()
    changed[1] = -changed[1]  # row 1 has no negative: its placeholder must be ignored
    for both in (False, True):
        a = hacl_contrastive_loss(image, text, negative, has, tau, negatives_both_sides=both)
        b = hacl_contrastive_loss(image, text, changed, has, tau, negatives_both_sides=both)
        assert [x.item() for x in a] == [x.item() for x in b]


def test_temperature_is_clamped(embeddings):
    image, text, negative, has = embeddings
    at_max = hacl_contrastive_loss(image, text, negative, has, torch.tensor(0.5, dtype=torch.float64))
    above = hacl_contrastive_loss(image, text, negative, has, torch.tensor(3.0, dtype=torch.float64))
    at_min = hacl_contrastive_loss(image, text, negative, has, torch.tensor(0.001, dtype=torch.float64))
    below = hacl_contrastive_loss(image, text, negative, has, torch.tensor(1e-6, dtype=torch.float64))
    assert [x.item() for x in above] == [x.item() for x in at_max]
    assert [x.item() for x in below] == [x.item() for x in at_min]
    want = _hand_loss(image.tolist(), text.tolist(), negative.tolist(), has.tolist(), 0.5, False)
    assert at_max[0].item() == pytest.approx(want[0], rel=1e-9)


def test_learnable_temperature_init_and_clamp():
    temperature = LearnableTemperature()
    assert temperature().item() == pytest.approx(0.07, rel=1e-6)
    with torch.no_grad():
        temperature.log_temperature.fill_(math.log(2.0))
    assert temperature().item() == pytest.approx(0.5)
    with torch.no_grad():
        temperature.log_temperature.fill_(math.log(1e-5))
    assert temperature().item() == pytest.approx(0.001)


def test_gradients_reach_all_three_embeddings(embeddings):
    image, text, negative, has = (x.clone().requires_grad_(x.dtype != torch.bool) for x in embeddings)
    loss_v, loss_t = hacl_contrastive_loss(
        image, text, negative, has, torch.tensor(0.07, dtype=torch.float64)
    )
    (loss_v + loss_t).backward()
    assert image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0
    assert negative.grad[1].abs().sum() == 0  # the masked row gets no gradient
    assert negative.grad[0].abs().sum() > 0
