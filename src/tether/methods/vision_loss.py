"""Vision pretraining's loss as a pure function of label logits: binary cross-entropy per label."""

import torch
import torch.nn.functional as F


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean binary cross-entropy of ``logits`` against 0/1 ``targets`` (``[..., labels]``: per image, or per
    patch for the dense objective), and ``exact_match``: the share of rows whose every label is right."""
    loss = F.binary_cross_entropy_with_logits(logits, targets)
    exact = ((logits > 0).float() == targets).all(dim=-1).float().mean()
    return loss, {"exact_match": exact}
