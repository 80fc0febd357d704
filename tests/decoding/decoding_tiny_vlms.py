"""Tiny random-init models of every family, built once per test session and shared by the decoding tests."""

import functools
import tempfile

from PIL import Image

from tether.models import ADAPTERS, load

FAMILIES = sorted(ADAPTERS)
WORDS = "red blue green square circle triangle left right above below yes no".split()
PROMPTS = ["is there a red square ?", "what color is the circle ?", "describe this image ."]
SIZES = [(32, 32), (64, 40), (40, 72)]  # anyres grids, tiles, crops and native grids vary with them

_checkpoints = tempfile.TemporaryDirectory(prefix="tether-decoding-")


def images(n: int = 3) -> list:
    out = []
    for i in range(n):
        image = Image.new("RGB", SIZES[i % 3], ["red", "blue", "green"][i % 3])
        image.paste((i * 60, 0, 255 - i * 60), (4 * i, 4, 4 * i + 12, 20))
        out.append(image)
    return out


@functools.cache
def tiny_vlm(arch: str):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return load(build_tiny_checkpoint(TinyConfig(arch=arch), f"{_checkpoints.name}/{arch}", WORDS))
