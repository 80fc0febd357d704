"""NoiseBoost: Gaussian noise on the projected visual tokens, in training only.

Applied through the adapter's projector hook, so it works for any architecture. The scale is absolute,
or relative to the standard deviation of the visual features it perturbs (per sample).
"""

from dataclasses import dataclass

import torch

from tether.config import from_dict


@dataclass
class NoiseSettings:
    scale: float = 0.5
    relative: bool = True  # noise std = scale × std of the sample's visual features; else = scale


class VisualNoise(torch.nn.Module):
    """Adds N(0, σ²) to visual features while ``self.training``; the identity otherwise."""

    def __init__(self, settings: NoiseSettings):
        super().__init__()
        self.settings = settings

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.settings.scale == 0:
            return features
        sigma = self.settings.scale
        if self.settings.relative:
            # per-sample std over its tokens and channels (LLaVA: [images, tokens, hidden]); flat features use all
            dims = tuple(range(1, features.dim())) if features.dim() > 2 else tuple(range(features.dim()))
            sigma = sigma * features.detach().float().std(dim=dims, keepdim=True).to(features.dtype)
        return features + torch.randn_like(features) * sigma


def noise_from_settings(raw: dict) -> VisualNoise:
    return VisualNoise(from_dict(NoiseSettings, raw, where="noiseboost"))
