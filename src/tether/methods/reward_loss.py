"""The reward model's pairwise loss: a pure function of the two reward tensors."""

import torch
import torch.nn.functional as F


def pairwise_reward_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, center_coef: float = 0.01
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley-Terry loss ``-log σ(r_c − r_r)`` averaged over pairs, plus ``center_coef · mean((r_c + r_r)²)``.

    The centring term (TRL's ``center_rewards_coefficient``) keeps rewards near zero, which PPO's value
    model, initialised from the reward model, relies on. Returns the loss and metrics (accuracy: share of
    pairs ranked right; margin: mean r_c − r_r).
    """
    margin = chosen_rewards.float() - rejected_rewards.float()
    loss = -F.logsigmoid(margin).mean()
    if center_coef:
        loss = loss + center_coef * ((chosen_rewards.float() + rejected_rewards.float()) ** 2).mean()
    metrics = {
        "accuracy": (margin > 0).float().mean().detach(),
        "margin": margin.mean().detach(),
        "reward_chosen": chosen_rewards.float().mean().detach(),
        "reward_rejected": rejected_rewards.float().mean().detach(),
    }
    return loss, metrics
