"""Adapter functions on the tiny llava and qwen2_vl, loaded through ``load()``, that test_conformance.py (every
family) does not cover: ``describe()``, visual sequences of different lengths in one batch, the projector
hook and a plain ``save_pretrained`` round trip."""

import pytest
import torch
from PIL import Image

PROMPTS = ["is there a red square ?", "what color is the circle ?", "describe this image ."]
RESPONSES = ["yes", "the circle is blue .", "a red square left of a green triangle ."]


def images(n=3):
    colours = ["red", "blue", "green", "white"]
    out = []
    for i in range(n):
        img = Image.new("RGB", (32, 32), colours[i % 4])
        img.paste((i * 60, 0, 255 - i * 60), (4 * i, 4, 4 * i + 12, 20))
        out.append(img)
    return out


def test_describe_names_the_architecture(tiny_vlm):
    assert tiny_vlm.describe()["architecture"] == tiny_vlm.arch in ("llava", "qwen2_vl")


def test_visual_representation_with_other_image_sizes(tiny_vlm):
    """Images that give different token counts are padded; each row still reads its own EOS."""
    if tiny_vlm.arch == "llava":
        pytest.skip("LLaVA resizes every image to one size: no padding between visual sequences")
    small, large = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (64, 48), "blue")
    n_small, n_large = (tiny_vlm.image_token_counts(tiny_vlm.image_inputs([im]))[0] for im in (small, large))
    assert n_small < n_large
    with torch.no_grad():
        alone = tiny_vlm.visual_eos_representation([small])
        together = tiny_vlm.visual_eos_representation([small, large])
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)


def test_projector_hook_changes_visual_tokens_only_inside_block(tiny_vlm):
    imgs = images(1)
    with torch.no_grad():
        before = tiny_vlm.visual_eos_representation(imgs)
        with tiny_vlm.projector_hook(lambda out: out + 1.0):
            hooked = tiny_vlm.visual_eos_representation(imgs)
        after = tiny_vlm.visual_eos_representation(imgs)
        text_before = tiny_vlm.text_eos_representation(["red"])
        with tiny_vlm.projector_hook(lambda out: out + 1.0):
            text_hooked = tiny_vlm.text_eos_representation(["red"])
    assert not torch.allclose(before, hooked)
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(text_before, text_hooked)  # text alone never runs the projector


def test_save_and_reload_roundtrip(tiny_vlm, tmp_path):
    from tether.models import load

    tiny_vlm.save_pretrained(tmp_path / "copy")
    again = load(tmp_path / "copy")
    batch = tiny_vlm.encode(images(1), PROMPTS[:1], RESPONSES[:1])
    with torch.no_grad():
        torch.testing.assert_close(
            tiny_vlm.response_logprobs(batch).summed, again.response_logprobs(batch).summed
        )
