"""FSDP on the CPU is refused, not silently replaced: accelerate 1.16 switches to FSDP only for GPU-like
devices (accelerate/state.py, AcceleratorState.__init__), so under `accelerate launch --config_file
configs/accelerate/fsdp.yaml` on CPUs (or with TrainingArguments' `fsdp`) the model would train under DDP
while the user asked for FSDP. torch's own FSDP2 does train on CPUs over gloo; the last two tests pin both
facts with scripts/fsdp_cpu_probe.py, so a new accelerate that runs FSDP on CPUs fails here and says the
refusal can be lifted."""

import importlib.util
from pathlib import Path

import pytest
import torch

from tether.core.errors import TetherError
from tether.methods.settings import TrainSettings
from tether.methods.trainer import training_arguments

PROBE_PATH = Path(__file__).resolve().parents[2] / "scripts" / "fsdp_cpu_probe.py"


def probe():
    spec = importlib.util.spec_from_file_location("fsdp_cpu_probe", PROBE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fsdp_launch_on_cpu_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    with pytest.raises(TetherError, match="FSDP needs GPUs"):
        training_arguments(TrainSettings(output_dir=str(tmp_path)), model_device="cpu")


def test_trainer_fsdp_argument_on_cpu_is_refused(monkeypatch, tmp_path):
    # `train.extra.fsdp` reaches TrainingArguments(fsdp=...), which on CPUs trains DDP just the same
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    settings = TrainSettings(output_dir=str(tmp_path), extra={"fsdp": True, "fsdp_config": {"fsdp_version": 2}})
    with pytest.raises(TetherError, match="FSDP needs GPUs"):
        training_arguments(settings, model_device="cpu")


def test_cpu_training_without_fsdp_is_not_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    args = training_arguments(TrainSettings(output_dir=str(tmp_path)), model_device="cpu")
    assert args.use_cpu


def test_torch_fsdp2_trains_on_two_cpu_processes_like_one(tmp_path):
    """torch level: `fully_shard` over gloo shards the parameters (DTensor), all-gathers them for the
    forward pass and reduce-scatters the gradients, and two steps reach one process's weights on the same
    global batch up to the order of fp32 sums (~1e-8 seen; a step moves weights by ~1e-2). With peft LoRA
    adapters (`torch-lora`) the frozen base weights stay put inside the same sharded groups."""
    fsdp_probe = probe()
    assert fsdp_probe.launch("torch", 2, tmp_path / "two.pt") == ""
    reports = torch.load(tmp_path / "two.pt")
    for route, lora in [("torch", False), ("torch-lora", True)]:
        one, two = fsdp_probe.torch_route(1, lora=lora), reports[route]
        assert two["parameter"] == "DTensor"
        assert two["collectives"]["all_gather_single"] > 0 and two["collectives"]["reduce_scatter_single"] > 0
        for name, value in one["weights"].items():
            torch.testing.assert_close(two["weights"][name], value, atol=1e-6, rtol=1e-5)
            step = (value - one["initial"][name]).abs().max()
            frozen = lora and "lora_" not in name
            assert step == 0 if frozen else step > 1e-3, name


def test_accelerate_fsdp_launch_on_cpu_still_trains_ddp(tmp_path):
    """The reason for the refusal: two processes launched with the shipped fsdp.yaml on CPUs (tether asks
    for use_cpu there) train under accelerate's multi-CPU mode with a DDP wrapper and whole parameters.
    If this fails, accelerate changed: run scripts/fsdp_cpu_probe.py and consider lifting the refusal."""
    fsdp_probe = probe()
    assert fsdp_probe.launch("launch", 2, tmp_path / "launch.pt") == ""
    report = torch.load(tmp_path / "launch.pt")
    assert report["ACCELERATE_USE_FSDP"] == "true" and report["world_size"] == 2
    assert report["accelerate_mode"] == "DistributedType.MULTI_CPU"
    assert report["wrapper"] == "DistributedDataParallel" and report["parameter"] == "Parameter"
