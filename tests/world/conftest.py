
import pytest
from world_helpers import SMOKE_CONFIG

from tether.world.config import load_world_config


@pytest.fixture(scope="session")
def smoke_config():
    return load_world_config(SMOKE_CONFIG)
