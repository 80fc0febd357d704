"""The tensors of one forward: ``ModelBatch`` (what ``encode`` builds), ``ResponseLogProbs`` (what scoring
returns), and the helpers that build and read them without a model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tether.core.errors import TetherError

# ``image_inputs`` keys with this prefix are tether's record of each image's layout (InternVL's tile counts,
# Idefics3's crop grid), which the model does not take; ``model_image_inputs`` leaves them out.
LAYOUT_PREFIX = "tether_"


# how many images each sample of a batch has, when some have several
IMAGES_PER_SAMPLE = LAYOUT_PREFIX + "images_per_sample"


def model_image_inputs(image_inputs: dict) -> dict:
    """The image inputs the model's forward takes (tether's layout records left out)."""
    return {k: v for k, v in image_inputs.items() if not k.startswith(LAYOUT_PREFIX)}


class ImageTokenMismatch(TetherError):
    """A batch whose image-token count differs from the number of visual features its images produce."""


@dataclass
class ModelBatch:
    """Tensors for one forward. ``response_mask`` is True on response tokens (the ones whose log-probs count)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    image_inputs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain nested dict (what a data collator returns and ``Trainer`` moves to the device)."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "response_mask": self.response_mask,
            "image_inputs": self.image_inputs,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelBatch:
        return cls(
            d["input_ids"],
            d["attention_mask"],
            d["response_mask"],
            d.get("image_inputs", {}),
            d.get("extra", {}),
        )

    def model_inputs(self) -> dict:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            **model_image_inputs(self.image_inputs),
            **self.extra,
        }

    def to(self, device) -> ModelBatch:
        def move(d):
            return {k: v.to(device) if torch.is_tensor(v) else v for k, v in d.items()}

        return ModelBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.response_mask.to(device),
            move(self.image_inputs),
            move(self.extra),
        )


@dataclass
class ResponseLogProbs:
    """``per_token[b, t]`` is log p(input_ids[b, t+1] | prefix), zero off the response; ``mask`` likewise shifted."""

    per_token: torch.Tensor
    mask: torch.Tensor
    summed: torch.Tensor
    logits: torch.Tensor | None = None


def logprobs_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor, return_logits: bool = False
) -> ResponseLogProbs:
    """Shifted log-probs of ``input_ids`` under ``logits``, computed only where ``response_mask`` is set.

    The log-softmax runs over response positions alone: the prompt (with hundreds of visual tokens) never
    pays for a vocabulary-sized softmax.
    """
    target_ids = input_ids[:, 1:]
    mask = response_mask[:, 1:]
    shifted = logits[:, :-1]
    selected = shifted[mask].float()
    token_logps = torch.gather(F.log_softmax(selected, dim=-1), 1, target_ids[mask].unsqueeze(1)).squeeze(1)
    per_token = torch.zeros(mask.shape, dtype=token_logps.dtype, device=logits.device)
    per_token = per_token.masked_scatter(mask, token_logps)
    return ResponseLogProbs(per_token, mask, per_token.sum(dim=1), logits if return_logits else None)


def pad_rows(rows, masks, pad_id: int, side: str):
    """Token rows as ``[batch, width]`` ids, attention and response masks, padded on ``side``."""
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, span] = 1
        response_mask[i, span] = torch.tensor(mask, dtype=torch.bool)
    return input_ids, attention_mask, response_mask


def at_last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at each row's last real token (right padding)."""
    last = attention_mask.to(hidden.device).sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def image_groups(images: Sequence) -> list[list]:
    """Each sample's images: an entry of ``images`` is one image or a list of several."""
    return [list(x) if isinstance(x, (list, tuple)) else [x] for x in images]


def per_sample(values: list, image_inputs: dict) -> list[list]:
    """Per-image ``values`` grouped by sample (one image per sample unless ``IMAGES_PER_SAMPLE`` says more)."""
    per_sample = image_inputs.get(IMAGES_PER_SAMPLE)
    if per_sample is None:
        return [[value] for value in values]
    bounds = [0, *torch.as_tensor(per_sample).cumsum(0).tolist()]
    return [values[a:b] for a, b in zip(bounds, bounds[1:])]
