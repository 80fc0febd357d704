"""The sigmoid DPO loss (Rafailov et al. 2023) as a pure function of summed response log-probs."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class DPOLossOutput:
    losses: torch.Tensor  # [batch] per-pair loss
    chosen_rewards: torch.Tensor  # [batch] β·(log π(y_w|x) − log π_ref(y_w|x)), detached
    rejected_rewards: torch.Tensor  # [batch] β·(log π(y_l|x) − log π_ref(y_l|x)), detached

    @property
    def loss(self) -> torch.Tensor:
        return self.losses.mean()

    def metrics(self) -> dict[str, torch.Tensor]:
        """What TRL logs under the same names, so curves compare directly."""
        return {
            "rewards/chosen": self.chosen_rewards.mean(),
            "rewards/rejected": self.rejected_rewards.mean(),
            "rewards/margins": (self.chosen_rewards - self.rejected_rewards).mean(),
            "rewards/accuracies": (self.chosen_rewards > self.rejected_rewards).float().mean(),
        }


def dpo_sigmoid_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
) -> DPOLossOutput:
    """−log σ(β·[(π_c − ref_c) − (π_r − ref_r)]) per pair, from summed log-probs of shape [batch]."""
    chosen_logratios = policy_chosen - reference_chosen.to(policy_chosen)
    rejected_logratios = policy_rejected - reference_rejected.to(policy_rejected)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return DPOLossOutput(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())
