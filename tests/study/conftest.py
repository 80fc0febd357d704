from pathlib import Path

import pytest

from tether.world.build import build_world
from tether.world.config import load_world_config

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory) -> Path:
    """The smoke world (configs/world/smoke.yaml), built once: what the baseline recipe's data come from."""
    out = tmp_path_factory.mktemp("world") / "smoke"
    build_world(load_world_config(SMOKE_CONFIG), out)
    return out
