from pathlib import Path

import pytest

from tether.core.config import load_config
from tether.methods.ppo import PPOConfig
from tether.methods.reward import RewardConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "rlhf"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_load(path):
    config = load_config(PPOConfig if path.name.startswith("ppo") else RewardConfig, path)
    assert config.model.lora is not None and config.model.freeze_projector
