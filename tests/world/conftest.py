from pathlib import Path

import pytest
from world_helpers import SMOKE_CONFIG

from tether.world.build import build_world
from tether.world.config import load_world_config


@pytest.fixture(scope="session")
def smoke_config():
    return load_world_config(SMOKE_CONFIG)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory, smoke_config) -> Path:
    out = tmp_path_factory.mktemp("world") / "smoke"
    build_world(smoke_config, out)
    return out

