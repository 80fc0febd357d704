"""M3ID, multi-modal mutual-information decoding (Favero et al., CVPR 2024, arXiv 2403.14003).

The model given the image (log-probs ``l_c``) is pushed away from the model without it (``l_u``), more as the
answer grows, since the image's influence fades with each generated token:

    s_t = l_c + (1 - gamma_t) / gamma_t * (l_c - l_u),   gamma_t = exp(-lambda * t),

t the number of tokens already generated (0 for the first), lambda 0.02; then VCD's plausibility cut-off
(beta 0.1) on ``l_c``. The paper released no code: t counted from 0, lambda and the cut-off follow the public
re-implementation in ONLY's code base (github.com/zifuwan/ONLY). At t = 0 the correction is zero, so the
first token (and the fast yes/no answer) is the plain model's; lambda 0 is the plain model throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import torch

from tether.core.errors import TetherError
from tether.decoding.contrastive import paired_batch, paired_generate, plausibility_cutoff
from tether.decoding.registry import Strategy
from tether.decoding.yes_no import first_token_logprobs
from tether.decoding.yes_no import margins as yes_no_margins


@dataclass
class M3IDSettings:
    lam: float = 0.02  # lambda: how fast the image's weight gamma_t decays with t
    beta: float = 0.1

    def check(self) -> None:
        if self.lam < 0 or not 0 <= self.beta <= 1:
            raise TetherError("m3id needs lam >= 0 and 0 <= beta <= 1")


def combine(settings: M3IDSettings, main: torch.Tensor, other: torch.Tensor, step: int) -> torch.Tensor:
    conditioned, unconditioned = main.log_softmax(dim=-1), other.log_softmax(dim=-1)
    gamma = math.exp(-settings.lam * step)
    scores = conditioned + (1 - gamma) / gamma * (conditioned - unconditioned)
    return plausibility_cutoff(scores, conditioned, settings.beta)


def generate(vlm, images, prompts, settings: M3IDSettings, decoding) -> list[str]:
    batch = paired_batch(vlm, images, prompts, None, prompts)
    return paired_generate(vlm, batch, partial(combine, settings), decoding)


def margins(vlm, images, questions, settings: M3IDSettings) -> torch.Tensor:
    """Fast yes/no: the first answer token, t = 0 (the images' prefix once, the questions alone once)."""
    conditioned = first_token_logprobs(vlm, images, questions)
    unconditioned = first_token_logprobs(vlm, None, questions)
    uncut = combine(replace(settings, beta=0.0), conditioned, unconditioned, 0)
    return yes_no_margins(vlm, combine(settings, conditioned, unconditioned, 0), fallback=uncut)


STRATEGY = Strategy("m3id", M3IDSettings, generate, margins)
