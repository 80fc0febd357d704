"""ICD, instruction contrastive decoding (Wang et al., ACL Findings 2024, arXiv 2403.18715).

The contrast is the same image under a disturbance instruction: the role prefix "You are a confused object
detector." put before the question (ICD's code inserts it right after the image placeholder), combined as
in VCD:

    s = (1 + alpha) * logit(y | v, x) - alpha * logit(y | v, x_d),
    s = -inf where logit(y | v, x) < log(beta) + max_y' logit(y' | v, x).

Defaults are ICD's code: alpha 1, beta 0.1. alpha 0 is the plain model's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch

from tether.core.errors import TetherError
from tether.decoding.contrastive import contrast, paired_batch, paired_generate
from tether.decoding.registry import Strategy
from tether.decoding.yes_no import first_token_logprobs
from tether.decoding.yes_no import margins as yes_no_margins

DISTURBANCE = "You are a confused object detector."


@dataclass
class ICDSettings:
    alpha: float = 1.0
    beta: float = 0.1
    disturbance: str = DISTURBANCE  # put before each prompt, with a space

    def check(self) -> None:
        if self.alpha < 0 or not 0 <= self.beta <= 1:
            raise TetherError("icd needs alpha >= 0 and 0 <= beta <= 1")


def disturbed(settings: ICDSettings, prompt: str) -> str:
    return f"{settings.disturbance} {prompt}"


def combine(settings: ICDSettings, main: torch.Tensor, other: torch.Tensor, step: int) -> torch.Tensor:
    return contrast(main, other, settings.alpha, settings.beta)


def generate(vlm, images, prompts, settings: ICDSettings, decoding) -> list[str]:
    batch = paired_batch(vlm, images, prompts, images, [disturbed(settings, p) for p in prompts])
    return paired_generate(vlm, batch, partial(combine, settings), decoding)


def margins(vlm, images, questions, settings: ICDSettings) -> torch.Tensor:
    """Fast yes/no: each image's prefix encoded once for the questions and their disturbed copies."""
    both = first_token_logprobs(vlm, images, questions + [(i, disturbed(settings, p)) for i, p in questions])
    main, other = both[: len(questions)], both[len(questions) :]
    uncut = combine(replace(settings, beta=0.0), main, other, 0)
    return yes_no_margins(vlm, combine(settings, main, other, 0), fallback=uncut)


STRATEGY = Strategy("icd", ICDSettings, generate, margins)
