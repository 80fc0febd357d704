"""VCD's image distortion: the DDPM forward process run to step T in closed form.

``x_T = sqrt(abar_T) * x_0 + sqrt(1 - abar_T) * eps``, ``eps ~ N(0, I)``, on the pixel tensors the model reads
(after the image processor's normalisation, as VCD's ``add_diffusion_noise`` does). The schedule is VCD's:
1000 steps, ``beta_t = sigmoid(linspace(-6, 6, 1000))_t * (5e-3 - 1e-5) + 1e-5``, ``abar_T = prod_{t<=T} (1 -
beta_t)``, T indexed from 0 as in VCD's code (``noise_step`` 500 in its scripts).

The noise of each image is drawn from a generator seeded by the seed and the image's own pixels, so it is
reproducible and the same whether the image is alone or in a batch.
"""

from __future__ import annotations

import hashlib

import torch

from tether.core.errors import TetherError
from tether.models.adapter import image_groups
from tether.models.image_cache import concatenate

NUM_STEPS = 1000


def alphas_cumprod() -> torch.Tensor:
    """``abar_t`` for t = 0..999 (float64), VCD's sigmoid schedule."""
    betas = torch.sigmoid(torch.linspace(-6, 6, NUM_STEPS, dtype=torch.float64)) * (0.5e-2 - 1e-5) + 1e-5
    return torch.cumprod(1 - betas, dim=0)


def add_diffusion_noise(pixels: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
    """``pixels`` noised to DDPM step ``step`` (0..999) with noise from ``generator``."""
    if not 0 <= step < NUM_STEPS:
        raise TetherError(f"noise_step must be in 0..{NUM_STEPS - 1}, got {step}")
    alpha_bar = alphas_cumprod()[step].item()
    noise = torch.randn(pixels.shape, generator=generator, dtype=torch.float32).to(pixels.device)
    return (alpha_bar**0.5 * pixels.float() + (1 - alpha_bar) ** 0.5 * noise).to(pixels.dtype)


def distorted_image_inputs(vlm, images, step: int, seed: int) -> dict:
    """The model's image inputs for ``images`` (one entry per sample: an image or a list) with every pixel
    tensor noised to ``step``; laid out like ``vlm.image_inputs`` of the same images."""
    parts = []
    for image in flat_images(images):
        inputs = dict(vlm.image_inputs([image]))
        for name in pixel_names(inputs):
            inputs[name] = add_diffusion_noise(inputs[name], step, _image_generator(inputs[name], seed))
        parts.append(inputs)
    return concatenate(parts)


def flat_images(images) -> list:
    """Every image of ``images`` (one entry per sample: an image or a list), in order."""
    return [image for group in image_groups(images) for image in group]


def pixel_names(image_inputs: dict) -> list[str]:
    """The pixel tensors of image inputs (not grids, sizes or masks)."""
    return [
        name
        for name, value in image_inputs.items()
        if name.startswith("pixel_values") and torch.is_tensor(value) and torch.is_floating_point(value)
    ]


def _image_generator(pixels: torch.Tensor, seed: int) -> torch.Generator:
    digest = hashlib.sha256(str(seed).encode() + pixels.detach().float().cpu().numpy().tobytes()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
