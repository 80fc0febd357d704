import math

import torch

from tether.methods.dpo_loss import dpo_sigmoid_loss


def test_sigmoid_loss_and_rewards_by_hand():
    out = dpo_sigmoid_loss(
        torch.tensor([-10.0, -4.0]),
        torch.tensor([-12.0, -3.0]),
        torch.tensor([-11.0, -4.0]),
        torch.tensor([-11.0, -4.0]),
        beta=0.1,
    )
    # pair 1: chosen ratio +1, rejected ratio -1 -> margin 2; pair 2: 0 and +1 -> margin -1
    expected = [math.log1p(math.exp(-0.2)), math.log1p(math.exp(0.1))]
    torch.testing.assert_close(out.losses, torch.tensor(expected))
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-0.1, 0.1]))
    metrics = out.metrics()
    assert metrics["rewards/accuracies"].item() == 0.5
    assert abs(metrics["rewards/margins"].item() - 0.05) < 1e-7
    assert abs(out.loss.item() - sum(expected) / 2) < 1e-7


def test_equal_policy_and_reference_give_log2():
    logps = torch.tensor([-3.0, -7.0])
    out = dpo_sigmoid_loss(logps, logps + 1, logps, logps + 1)
    torch.testing.assert_close(out.losses, torch.full((2,), math.log(2)))
