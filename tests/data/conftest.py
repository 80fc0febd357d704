from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """The generators here run tiny models: on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def world_checkpoint(tmp_path_factory) -> Path:
    """A tiny random-init LLaVA over the world's words: its samples are word salad that names shapes,
    so the rule judge finds hallucinations in most of them."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint
    from tether.world.texts import world_words

    return build_tiny_checkpoint(
        TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_world"), world_words()
    )
