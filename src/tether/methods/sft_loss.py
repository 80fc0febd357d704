"""SFT's loss as a pure function of response log-probs: mean next-token NLL, per token or per sample."""

from collections.abc import Sequence

import torch

from tether.models.batch import ResponseLogProbs


def next_token_loss(
    results: Sequence[tuple[ResponseLogProbs, torch.Tensor]], normalize: str = "token"
) -> dict:
    """Mean NLL of the response tokens of one or more forwards (each ``(log-probs with logits, input_ids)``).

    ``normalize``: "token" (over all response tokens) or "sample" (per response, then over responses).
    """
    total_logp, total_tokens, correct = 0.0, 0, 0
    sample_means = []
    for result, input_ids in results:
        total_logp = total_logp + result.summed.sum()
        total_tokens += int(result.mask.sum())
        sample_means.append(result.summed / result.mask.sum(-1).clamp(min=1))
        predicted = result.logits[:, :-1].argmax(-1)
        correct += int((predicted == input_ids[:, 1:].to(predicted.device))[result.mask].sum())
    if normalize == "sample":
        loss = -torch.cat(sample_means).mean()
    else:
        loss = -total_logp / max(total_tokens, 1)
    return {"loss": loss, "metrics": {"token_accuracy": torch.tensor(correct / max(total_tokens, 1))}}
