"""PPO's pure functions against hand computations."""

import math

import pytest
import torch

from tether.methods.ppo_loss import (
    AdaptiveKLController,
    entropy_from_logits,
    gae,
    kl_penalty,
    last_positions,
    masked_whiten,
    policy_loss,
    shaped_rewards,
    value_loss,
)
from tether.methods.reward_loss import pairwise_reward_loss

# row 0: prompt at 0, response at 1..3, padding at 4; row 1: prompt at 0..1, response at 2..3
MASK = torch.tensor([[False, True, True, True, False], [False, False, True, True, False]])


def test_gae_by_hand():
    rewards = torch.tensor([[7.0, 1.0, 2.0, 3.0, 7.0], [7.0, 7.0, 0.0, 1.0, 7.0]])  # 7s are off the response
    values = torch.tensor([[9.0, 0.5, 1.0, 1.5, 9.0], [9.0, 9.0, 2.0, 0.5, 9.0]])
    advantages, returns = gae(rewards, values, MASK, gamma=0.9, lam=0.8)
    # row 0, backwards: δ3 = 3 − 1.5 = 1.5; δ2 = 2 + .9·1.5 − 1 = 2.35, A2 = 2.35 + .72·1.5 = 3.43;
    # δ1 = 1 + .9·1 − .5 = 1.4, A1 = 1.4 + .72·3.43 = 3.8696
    # row 1: δ3 = 1 − .5 = .5; δ2 = 0 + .9·.5 − 2 = −1.55, A2 = −1.55 + .72·.5 = −1.19
    expected = torch.tensor([[0.0, 3.8696, 3.43, 1.5, 0.0], [0.0, 0.0, -1.19, 0.5, 0.0]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, (expected + values) * MASK)


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 1.0, 2.0, 3.0, 0.0]])
    values = torch.tensor([[0.0, 0.5, 1.0, 1.5, 0.0]])
    advantages, returns = gae(rewards, values, MASK[:1], gamma=1.0, lam=1.0)
    torch.testing.assert_close(returns, torch.tensor([[0.0, 6.0, 5.0, 3.0, 0.0]]))
    torch.testing.assert_close(advantages, torch.tensor([[0.0, 5.5, 4.0, 1.5, 0.0]]))


def test_kl_estimators():
    logprobs, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0])
    torch.testing.assert_close(kl_penalty(logprobs, ref, "k1"), torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(kl_penalty(logprobs, ref, "k1_clamped"), torch.tensor([1.0, 0.0]))
    # k3 with log r = ref − logp: (e^{log r} − 1) − log r
    torch.testing.assert_close(
        kl_penalty(logprobs, ref, "k3"), torch.tensor([math.exp(-1) - 1 + 1, math.exp(1) - 1 - 1])
    )
    with pytest.raises(ValueError, match="unknown KL"):
        kl_penalty(logprobs, ref, "k2")


def test_shaped_rewards_put_score_on_last_response_token():
    kl = torch.tensor([[5.0, 0.5, -0.2, 0.1, 5.0], [5.0, 5.0, 1.0, 2.0, 5.0]])
    rewards = shaped_rewards(torch.tensor([2.0, -1.0]), kl, MASK, kl_coef=0.1)
    expected = torch.tensor([[0.0, -0.05, 0.02, -0.01 + 2.0, 0.0], [0.0, 0.0, -0.1, -0.2 - 1.0, 0.0]])
    torch.testing.assert_close(rewards, expected)
    assert last_positions(MASK).tolist() == [3, 3]


def test_clipped_policy_loss_by_hand():
    ratio = torch.tensor([[1.5, 0.5, 1.1, 2.0, 50.0]])
    advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0, 100.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    old = torch.zeros(1, 5)
    loss, metrics = policy_loss(ratio.log(), old, advantages, mask, clip_range=0.2)
    # max(−Aρ, −A·clip(ρ)): 1.5,+1 → −1.2 (clipped); .5,−1 → .8 (clipped); 1.1,+1 → −1.1; 2,−1 → 2.0
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 1.1 + 2.0) / 4)
    assert metrics["clipfrac"].item() == pytest.approx(0.5)
    logs = ratio.log()[0, :4]
    assert metrics["approx_kl"].item() == pytest.approx((0.5 * logs**2).mean().item())


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[2.0, 1.1, 99.0]])
    old = torch.tensor([[1.0, 1.0, 0.0]])
    returns = torch.tensor([[3.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    loss, metrics = value_loss(values, old, returns, mask, clip_range=0.2)
    # row 0: unclipped (2−3)² = 1, clipped (1.2−3)² = 3.24 → 3.24; row 1: 0.01 either way
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.01) / 2)
    assert metrics["value_clipfrac"].item() == pytest.approx(0.5)


def test_losses_give_gradients_only_through_the_response():
    logprobs = torch.zeros(2, 5, requires_grad=True)
    loss, _ = policy_loss(logprobs, torch.zeros(2, 5), torch.ones(2, 5), MASK)
    loss.backward()
    assert torch.equal(logprobs.grad != 0, MASK)


def test_whiten_entropy_and_adaptive_kl():
    x = torch.tensor([[100.0, 1.0, 2.0, 3.0, -100.0]])
    w = masked_whiten(x, MASK[:1])
    std = math.sqrt(2 / 3)
    torch.testing.assert_close(w, torch.tensor([[0.0, -1 / std, 0.0, 1 / std, 0.0]]), rtol=1e-4, atol=1e-4)
    uniform = torch.zeros(1, 1, 8)
    assert entropy_from_logits(uniform).item() == pytest.approx(math.log(8))
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    controller.update(observed_kl=12.0, n_steps=100)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.1 * (1 + 0.2 * 100 / 10000))
    fixed = AdaptiveKLController(0.1)
    fixed.update(observed_kl=50.0, n_steps=100)
    assert fixed.value == 0.1


def test_pairwise_reward_loss_by_hand():
    loss, metrics = pairwise_reward_loss(
        torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5]), center_coef=0.01
    )
    # margins 1, −1: −log σ(1) = 0.313262, −log σ(−1) = 1.313262; centring: mean(1², 0²)·0.01
    assert loss.item() == pytest.approx((0.313262 + 1.313262) / 2 + 0.01 * 0.5, rel=1e-5)
    assert metrics["accuracy"].item() == 0.5
    assert metrics["margin"].item() == pytest.approx(0.0)
