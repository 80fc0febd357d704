from pathlib import Path

import pytest

from tether.world.build import build_world
from tether.world.config import load_world_config

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


@pytest.fixture(scope="session")
def judge_world(tmp_path_factory) -> Path:
    """The smoke world (24 test scenes, 16 MMHal items, every question type twice)."""
    out = tmp_path_factory.mktemp("judge_world") / "smoke"
    build_world(load_world_config(SMOKE_CONFIG), out)
    return out


@pytest.fixture(scope="session")
def judge(judge_world):
    from tether.world.judge import WorldRuleJudge

    return WorldRuleJudge(judge_world)
