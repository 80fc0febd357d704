"""FSDP on the CPU is refused, not silently replaced: accelerate 1.16 switches to FSDP only for GPU-like
devices (accelerate/state.py, AcceleratorState.__init__), so under `accelerate launch --config_file
configs/accelerate/fsdp.yaml` on CPUs the model would train under DDP while the user asked for FSDP."""

import pytest

from tether.core.errors import TetherError
from tether.methods.settings import TrainSettings
from tether.methods.trainer import training_arguments


def test_fsdp_launch_on_cpu_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    with pytest.raises(TetherError, match="FSDP needs GPUs"):
        training_arguments(TrainSettings(output_dir=str(tmp_path)), model_device="cpu")


def test_cpu_training_without_fsdp_is_not_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    args = training_arguments(TrainSettings(output_dir=str(tmp_path)), model_device="cpu")
    assert args.use_cpu
