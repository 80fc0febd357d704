"""VCD, visual contrastive decoding (Leng et al., CVPR 2024, arXiv 2311.16922; github.com/DAMO-NLP-SG/VCD).

The next token's scores contrast the model given the image ``v`` with the model given a distorted image ``v'``
(DDPM forward noise at step T, ``distortion.py``), under the adaptive plausibility constraint:

    s = (1 + alpha) * logit(y | v, x) - alpha * logit(y | v', x),
    s = -inf where logit(y | v, x) < log(beta) + max_y' logit(y' | v, x).

Defaults are VCD's scripts: alpha 1, beta 0.1, noise step 500. alpha 0 is the plain model's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch

from tether.core.errors import TetherError
from tether.decoding.contrastive import contrast, paired_batch, paired_generate
from tether.decoding.distortion import NUM_STEPS, distorted_image_inputs, flat_images, pixel_names
from tether.decoding.registry import Strategy
from tether.decoding.yes_no import first_token_logprobs
from tether.decoding.yes_no import margins as yes_no_margins
from tether.models.image_cache import concatenate


@dataclass
class VCDSettings:
    alpha: float = 1.0  # contrast strength
    beta: float = 0.1  # plausibility cut-off, a fraction of the top probability
    noise_step: int = 500  # T of the DDPM forward process (0..999)
    seed: int = 0  # of the noise (each image's noise also depends on its pixels)

    def check(self) -> None:
        if self.alpha < 0 or not 0 <= self.beta <= 1 or not 0 <= self.noise_step < NUM_STEPS:
            raise TetherError(f"vcd needs alpha >= 0, 0 <= beta <= 1, 0 <= noise_step < {NUM_STEPS}")


def combine(settings: VCDSettings, main: torch.Tensor, other: torch.Tensor, step: int) -> torch.Tensor:
    return contrast(main, other, settings.alpha, settings.beta)


def generate(vlm, images, prompts, settings: VCDSettings, decoding) -> list[str]:
    batch = paired_batch(vlm, images, prompts, images, prompts)
    clean = vlm.image_inputs(flat_images(images))
    distorted = distorted_image_inputs(vlm, images, settings.noise_step, settings.seed)
    for name in pixel_names(distorted):  # the contrast rows' images come second in the batch
        batch.image_inputs[name] = concatenate([{name: clean[name]}, {name: distorted[name]}])[name]
    return paired_generate(vlm, batch, partial(combine, settings), decoding)


def margins(vlm, images, questions, settings: VCDSettings) -> torch.Tensor:
    """Fast yes/no: the clean and the distorted images' prefixes encoded once, in one forward (the distorted
    copy of image ``i`` is image ``len(images) + i``), then every question against both in one forward."""
    distorted = distorted_image_inputs(vlm, images, settings.noise_step, settings.seed)
    both = concatenate([vlm.image_inputs(flat_images(images)), distorted])
    asked = questions + [(i + len(images), prompt) for i, prompt in questions]
    logprobs = first_token_logprobs(vlm, list(images) * 2, asked, image_inputs=both)
    clean, noisy = logprobs[: len(questions)], logprobs[len(questions) :]
    uncut = combine(replace(settings, beta=0.0), clean, noisy, 0)
    return yes_no_margins(vlm, combine(settings, clean, noisy, 0), fallback=uncut)


STRATEGY = Strategy("vcd", VCDSettings, generate, margins)
