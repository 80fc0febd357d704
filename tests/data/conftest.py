from pathlib import Path

import pytest

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """The generators here run tiny models: on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def pair_world(tmp_path_factory) -> Path:
    """The smoke world (60 train scenes, images under images/)."""
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    out = tmp_path_factory.mktemp("pair_world") / "smoke"
    build_world(load_world_config(SMOKE_CONFIG), out)
    return out


@pytest.fixture(scope="session")
def world_checkpoint(tmp_path_factory) -> Path:
    """A tiny random-init LLaVA over the world's words: its samples are word salad that names shapes,
    so the rule judge finds hallucinations in most of them."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint
    from tether.world.texts import world_words

    return build_tiny_checkpoint(
        TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_world"), world_words()
    )
