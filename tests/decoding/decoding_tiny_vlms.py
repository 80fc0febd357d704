"""Tiny random-init models of every family, built once per test session and shared by the decoding tests."""

import functools
import tempfile

from tether.models import ADAPTERS, load

FAMILIES = sorted(ADAPTERS)
WORDS = "red blue green square circle triangle left right above below yes no".split()
PROMPTS = ["is there a red square ?", "what color is the circle ?", "describe this image ."]

_checkpoints = tempfile.TemporaryDirectory(prefix="tether-decoding-")


@functools.cache
def tiny_vlm(arch: str):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return load(build_tiny_checkpoint(TinyConfig(arch=arch), f"{_checkpoints.name}/{arch}", WORDS))
