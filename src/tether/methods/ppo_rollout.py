"""A PPO step's experience (``Rollout``) and how generated text becomes the batches every later forward sees.

Rollouts go through text: responses are decoded, then re-encoded with ``encode``; ``encode`` appends EOS to every
response, which is taken off where generation was cut by the token budget (``drop_eos_where_unfinished``).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tether.models import ModelBatch, VisionLanguageModel


@dataclass
class Rollout:
    """One step's experience; tensors are ``[n, positions]`` in the layout of ``ResponseLogProbs``."""

    records: list
    images: list | None
    responses: list[str]
    finished: list[bool]
    mask: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    metrics: dict


def drop_eos_where_unfinished(
    vlm: VisionLanguageModel, batch: ModelBatch, finished: Sequence[bool]
) -> ModelBatch:
    """``encode`` appends EOS to every response; take it off (right padding) where generation was cut."""
    input_ids, attention, response = (
        batch.input_ids.clone(),
        batch.attention_mask.clone(),
        batch.response_mask.clone(),
    )
    for row, done in enumerate(finished):
        if not done:
            last = int(attention[row].sum()) - 1
            input_ids[row, last], attention[row, last], response[row, last] = vlm.pad_token_id, 0, False
    return ModelBatch(input_ids, attention, response, batch.image_inputs, vlm.extra_inputs(input_ids))


def sample_indices(n: int, batch_size: int, seed: int) -> list[int]:
    """The ``batch_size`` prompts (of ``n``) a step rolls out: without repeats when there are enough."""
    generator = torch.Generator().manual_seed(seed)
    if batch_size <= n:
        return torch.randperm(n, generator=generator)[:batch_size].tolist()
    return torch.randint(n, (batch_size,), generator=generator).tolist()
