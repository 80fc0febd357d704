"""Without DeepSpeed, saving needs no `deepspeed` and only the main rank writes. The real ZeRO-3 gather (every
rank joins, full weights written) runs in tests/distributed/test_deepspeed.py and test_deepspeed_ppo.py."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from tether.methods.trainer import TetherTrainer, is_zero3_partitioned, trainable_state


def test_ordinary_parameters_need_no_deepspeed(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # `import deepspeed` would raise
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    state = trainable_state(layer)
    assert list(state) == ["weight"]
    torch.testing.assert_close(state["weight"], layer.weight.detach())
    assert not is_zero3_partitioned(layer)


def fake_trainer(module, should_save):
    return SimpleNamespace(
        args=SimpleNamespace(should_save=should_save, output_dir="unused"),
        accelerator=SimpleNamespace(unwrap_model=lambda m: m),
        model=module,
    )


def test_non_main_rank_without_zero3_does_nothing(tmp_path: Path):
    TetherTrainer._save(fake_trainer(torch.nn.Linear(2, 2), should_save=False), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
