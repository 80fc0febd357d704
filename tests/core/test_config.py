from dataclasses import dataclass, field

import pytest

from tether.core.config import load_config
from tether.core.errors import TetherError


@dataclass
class Optim:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Recipe:
    name: str = "x"
    optim: Optim = field(default_factory=Optim)
    tags: list[str] = field(default_factory=list)
    seed: int | None = None


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: world\noptim:\n  lr: 1\n")
    cfg = load_config(Recipe, path, ["optim.steps=5", "tags=[a, b]", "seed=3"])
    assert cfg.name == "world" and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.steps == 5 and cfg.tags == ["a", "b"] and cfg.seed == 3


def test_unknown_key_and_bad_type_are_errors(tmp_path):
    with pytest.raises(TetherError, match="unknown key"):
        load_config(Recipe, None, ["optim.lrr=1"])
    with pytest.raises(TetherError, match="expected int"):
        load_config(Recipe, None, ["optim.steps=many"])
