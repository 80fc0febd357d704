"""Checkpoints under DeepSpeed ZeRO-3 hold full parameters, gathered from the shards (deepspeed faked here)."""

import sys
import types
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from tether.methods.trainer import TRAINABLE_WEIGHTS, TetherTrainer, is_zero3_partitioned, trainable_state


def partitioned_linear():
    """A Linear whose weight looks like a ZeRO-3 shard: empty `data`, full value kept aside, tagged `ds_id`."""
    layer = torch.nn.Linear(3, 2, bias=False)
    full = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    layer.weight.ds_id = 7
    layer.weight.full_value = full
    layer.weight.data = torch.empty(0)
    return layer


@pytest.fixture
def fake_deepspeed(monkeypatch):
    """A `deepspeed` module whose GatheredParameters swaps the full value in, and records every call."""
    calls = []

    @contextmanager
    def gathered_parameters(params, modifier_rank=None):
        calls.append(([p.ds_id for p in params], modifier_rank))
        shards = [p.data for p in params]
        for p in params:
            p.data = p.full_value
        try:
            yield
        finally:
            for p, shard in zip(params, shards):
                p.data = shard

    module = types.ModuleType("deepspeed")
    module.zero = SimpleNamespace(GatheredParameters=gathered_parameters)
    monkeypatch.setitem(sys.modules, "deepspeed", module)
    return calls


def test_zero3_parameters_are_gathered_to_their_full_value(fake_deepspeed):
    layer = partitioned_linear()
    state = trainable_state(layer)
    torch.testing.assert_close(state["weight"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert fake_deepspeed == [([7], None)]  # read-only gather: no rank's changes are written back
    assert layer.weight.numel() == 0  # the shard is back in place after the gather


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


def test_every_rank_joins_the_gather_but_only_the_main_one_writes(tmp_path: Path, fake_deepspeed):
    other_rank = tmp_path / "rank1"
    TetherTrainer._save(fake_trainer(partitioned_linear(), should_save=False), str(other_rank))
    assert fake_deepspeed == [([7], None)]  # it took part in the collective
    assert not other_rank.exists()

    main_rank = tmp_path / "rank0"
    TetherTrainer._save(fake_trainer(partitioned_linear(), should_save=True), str(main_rank))
    saved = load_file(main_rank / TRAINABLE_WEIGHTS)
    torch.testing.assert_close(saved["weight"], torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_non_main_rank_without_zero3_does_nothing(tmp_path: Path):
    TetherTrainer._save(fake_trainer(torch.nn.Linear(2, 2), should_save=False), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
