"""PPO's pieces as pure functions: KL penalty, reward shaping, GAE, clipped losses, and LLaVA-RLHF's sequence
score (``shape_scores``, with the rule-based ``symbolic_bonus`` of an answer).

Every tensor is ``[batch, positions]`` with a boolean ``mask`` marking response positions, in the layout
of ``ResponseLogProbs``: position ``t`` holds the log-prob (and value) of emitting token ``t + 1``. Each row's
response is one contiguous run of True; anything outside it is ignored.
"""

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise to unit variance over masked positions (and zero mean if ``shift_mean``); zero elsewhere."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy ‖ reference) from sampled tokens' log-probs.

    ``k1``: log π − log π_ref (unbiased, can be negative per token; LLaVA-RLHF clamps it at 0, see
    ``k1_clamped``); ``k3``: (r − 1) − log r with r = π_ref / π (non-negative, lower variance).
    """
    if kind == "k1":
        return logprobs - ref_logprobs
    if kind == "k1_clamped":
        return (logprobs - ref_logprobs).clamp(min=0.0)
    if kind == "k3":
        log_ratio = ref_logprobs - logprobs
        return torch.exp(log_ratio) - 1.0 - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; choose k1, k1_clamped or k3")


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last True position (0 for an all-False row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, torch.zeros_like(positions)).max(dim=1).values


def shaped_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: ``−kl_coef · kl`` on every response token, plus the sequence score on the last."""
    rewards = -kl_coef * kl * mask.to(kl.dtype)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_positions(mask)] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each row's response; returns ``(advantages, returns)``.

    δ_t = r_t + γ V_{t+1} − V_t and A_t = δ_t + γλ A_{t+1}, where V and A past the response's end are 0.
    ``returns = advantages + values`` are the value targets.
    """
    m = mask.to(values.dtype)
    rewards, values = rewards * m, values * m
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * m[:, t]
        # a masked position passes nothing back: before the response (prompt) there is nothing to pass to
        next_value = values[:, t] * m[:, t]
        next_advantage = advantages[:, t]
    return advantages, (advantages + values) * m


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate ``mean(max(−A·ρ, −A·clip(ρ, 1 ± ε)))`` over response tokens.

    Metrics: ``clipfrac`` (share of tokens where the clipped term is the larger) and ``approx_kl``
    (½·mean((log ρ)²), between the rollout policy and the current one).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    metrics = {
        "clipfrac": masked_mean((clipped > unclipped).float(), mask).detach(),
        "approx_kl": masked_mean(0.5 * log_ratio.detach() ** 2, mask),
    }
    return loss, metrics


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss ``½·mean(max((V − R)², (clip(V, V_old ± ε) − R)²))`` over response tokens."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    losses = (values - returns) ** 2
    clipped_losses = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(losses, clipped_losses), mask)
    return loss, {"value_clipfrac": masked_mean((clipped_losses > losses).float(), mask).detach()}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution, ``[batch, positions]``."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


class AdaptiveKLController:
    """Ziegler et al. (2019): move the KL coefficient so the observed KL tracks ``target``.

    coef ← coef · (1 + clip(KL / target − 1, ±0.2) · n_steps / horizon). With ``target=None`` the
    coefficient stays fixed (LLaVA-RLHF's setting, 0.1).
    """

    def __init__(self, init_coef: float, target: float | None = None, horizon: int = 10000):
        self.value = init_coef
        self.target = target
        self.horizon = horizon

    def update(self, observed_kl: float, n_steps: int) -> None:
        if self.target is None:
            return
        error = max(-0.2, min(0.2, observed_kl / self.target - 1.0))
        self.value *= 1.0 + error * n_steps / self.horizon


def symbolic_bonus(response: str, answer: str | None) -> float:
    """LLaVA-RLHF's rule-based bonus: +1 for the correct option letter (first word, or "correct option is X"),
    and for yes/no questions +0.5 for the right first word, −0.5 for the wrong one, 0 otherwise.

    (LLaVA-RLHF gives no yes/no bonus when the answer is "yes"; here both directions count.)
    """
    if not answer:
        return 0.0
    answer = answer.strip().lower()
    words = response.strip().lower().split()
    first = words[0].strip(".,:;!?)(") if words else ""
    if answer in ("yes", "no"):
        if first == answer:
            return 0.5
        return -0.5 if first in ("yes", "no") else 0.0
    if len(answer) == 1 and answer.isalpha():
        said = " ".join(words).replace(" .", ".")
        return 1.0 if first == answer or f"correct option is {answer}" in said else 0.0
    return 1.0 if " ".join(words).strip(".") == answer.strip(".") else 0.0


def shape_scores(
    reward: torch.Tensor,
    unfinished: torch.Tensor,
    lengths: torch.Tensor,
    length_multipliers: torch.Tensor,
    bonus: torch.Tensor,
    settings,
) -> torch.Tensor:
    """LLaVA-RLHF's sequence score: reward model, missing-EOS penalty, length term, symbolic bonus, with the
    shaping fields of ``settings`` (``PPOSettings``)."""
    score = reward
    if settings.no_eos_penalty:
        penalised = settings.no_eos_penalty + (0.0 if settings.no_eos_penalty_replaces else reward)
        score = torch.where(unfinished, penalised, reward)
    score = score + settings.length_bonus * lengths / settings.max_new_tokens * length_multipliers
    return score + settings.correct_bonus * bonus
