"""VCD's distortion: the DDPM forward process in closed form, on VCD's schedule, seeded per image."""

import math

import pytest
import torch
from decoding_helpers import images

from tether.core.errors import TetherError
from tether.decoding.distortion import add_diffusion_noise, alphas_cumprod, distorted_image_inputs


def test_schedule_is_vcds():
    # VCD's add_diffusion_noise: betas = sigmoid(linspace(-6, 6, 1000)) * (0.5e-2 - 1e-5) + 1e-5
    betas = [1 / (1 + math.exp(-(-6 + 12 * t / 999))) * (0.5e-2 - 1e-5) + 1e-5 for t in range(1000)]
    alpha_bar = math.prod(1 - b for b in betas[:501])  # step 500, counted from 0
    assert alphas_cumprod()[500].item() == pytest.approx(alpha_bar, rel=1e-9)
    assert alphas_cumprod()[0].item() == pytest.approx(1 - betas[0], rel=1e-12)


@pytest.mark.parametrize("step", [0, 250, 500, 999])
def test_noise_level_at_step_matches_closed_form(step):
    alpha_bar = alphas_cumprod()[step].item()
    x0 = torch.full((200_000,), 0.7)
    noised = add_diffusion_noise(x0, step, torch.Generator().manual_seed(0))
    # x_T = sqrt(abar_T) x_0 + sqrt(1 - abar_T) eps: mean and spread of the closed form
    assert noised.mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.7, abs=0.01)
    assert noised.std().item() == pytest.approx(math.sqrt(1 - alpha_bar), rel=0.01)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    expected = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * eps
    torch.testing.assert_close(noised, expected)


def test_step_out_of_range_is_an_error():
    with pytest.raises(TetherError, match="noise_step must be in 0..999"):
        add_diffusion_noise(torch.zeros(3), 1000, torch.Generator())


def test_noise_is_seeded_reproducible_and_the_same_alone_or_batched(llava):
    imgs = images(2)
    batched = distorted_image_inputs(llava, imgs, 500, seed=0)
    torch.testing.assert_close(batched, distorted_image_inputs(llava, imgs, 500, seed=0), atol=0, rtol=0)
    alone = distorted_image_inputs(llava, imgs[1:], 500, seed=0)
    torch.testing.assert_close(batched["pixel_values"][1:], alone["pixel_values"], atol=0, rtol=0)
    other_seed = distorted_image_inputs(llava, imgs, 500, seed=1)
    assert not torch.equal(batched["pixel_values"], other_seed["pixel_values"])
    clean = llava.image_inputs(imgs)["pixel_values"]
    assert not torch.equal(batched["pixel_values"], clean) and batched["pixel_values"].shape == clean.shape
