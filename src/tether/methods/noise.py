"""NoiseBoost: Gaussian noise on the projected visual tokens, in training only.

Applied through the adapter's projector hook, so it works for any architecture. The scale is absolute,
or relative to the standard deviation of the visual features it perturbs (per sample), and may decay over
training (constant, linear or cosine schedule, driven by ``NoiseScheduleCallback``).

Use ``noise_hook(vlm, noise)`` rather than a bare ``vlm.projector_hook(noise)``: it also checks the
projector's own training flag, so noise can never leak into evaluation or ``vlm.generate`` (which puts the
model in eval mode) even if the noise module itself was left in training mode.
"""

import contextlib
import math
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from tether.core.config import from_dict
from tether.core.errors import TetherError

SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class NoiseSettings:
    """NoiseBoost (the ``noiseboost:`` section of the SFT, DPO, HACL and SSL recipes).

    Parameters:
        scale: the noise's size at the first step.
        relative: True: noise std = scale × the std of the sample's visual features; False: std = scale.
        schedule: constant | linear | cosine: the decay from ``scale`` to ``final_scale`` over training.
        final_scale: the scale at the last step (linear and cosine schedules only).
    """

    scale: float = 0.5
    relative: bool = True
    schedule: str = "constant"
    final_scale: float = 0.0


def scheduled_scale(settings: NoiseSettings, progress: float) -> float:
    """Noise scale at ``progress`` ∈ [0, 1] of training (0 = first step, 1 = last)."""
    progress = min(max(progress, 0.0), 1.0)
    start, end = settings.scale, settings.final_scale
    if settings.schedule == "constant":
        return start
    if settings.schedule == "linear":
        return start + (end - start) * progress
    if settings.schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    raise TetherError(
        f"noiseboost.schedule '{settings.schedule}' unknown; choose from {', '.join(SCHEDULES)}"
    )


class VisualNoise(torch.nn.Module):
    """Adds N(0, σ²) to visual features while ``self.training``; the identity otherwise.

    ``progress`` (fraction of training done) selects the scheduled scale; ``NoiseScheduleCallback`` sets it.
    """

    def __init__(self, settings: NoiseSettings):
        super().__init__()
        if settings.schedule not in SCHEDULES:
            raise TetherError(
                f"noiseboost.schedule '{settings.schedule}' unknown; choose from {', '.join(SCHEDULES)}"
            )
        if settings.scale < 0 or settings.final_scale < 0:
            raise TetherError("noiseboost scales must be >= 0")
        self.settings = settings
        self.progress = 0.0

    @property
    def current_scale(self) -> float:
        return scheduled_scale(self.settings, self.progress)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scale = self.current_scale
        if not self.training or scale == 0:
            return features
        sigma = scale
        if self.settings.relative:
            # per-sample std over its tokens and channels (LLaVA: [images, tokens, hidden]); flat features use all
            dims = tuple(range(1, features.dim())) if features.dim() > 2 else tuple(range(features.dim()))
            sigma = sigma * features.detach().float().std(dim=dims, keepdim=True).to(features.dtype)
        return features + torch.randn_like(features) * sigma


def noise_settings(value: NoiseSettings | dict | None) -> NoiseSettings | None:
    """A config's ``noiseboost`` field as ``NoiseSettings``: recipes give a typed section already; code that
    builds a config gives the settings or their mapping (checked like a recipe's section). None: no noise."""
    if value is None or isinstance(value, NoiseSettings):
        return value
    return from_dict(NoiseSettings, value, where="noiseboost")


def noise_from_settings(raw: NoiseSettings | dict) -> VisualNoise:
    return VisualNoise(noise_settings(raw))


def training_noise(settings: NoiseSettings | None) -> tuple[VisualNoise | None, list]:
    """A config's ``noiseboost`` settings as the perturbation and the callbacks that drive its schedule."""
    if settings is None:
        return None, []
    noise = VisualNoise(settings)
    return noise, [NoiseScheduleCallback(noise)]


@contextlib.contextmanager
def noise_hook(vlm, noise: VisualNoise):
    """Perturb ``vlm``'s projected visual tokens by ``noise`` while both noise and projector are training."""
    projector = vlm.projector
    with vlm.projector_hook(lambda features: noise(features) if projector.training else features):
        yield


class NoiseScheduleCallback(TrainerCallback):
    """Sets ``noise.progress`` = step / max_steps before every optimizer step (also right after a resume)."""

    def __init__(self, noise: VisualNoise):
        self.noise = noise

    def on_step_begin(self, args, state, control, **kwargs):
        self.noise.progress = state.global_step / max(state.max_steps - 1, 1)
