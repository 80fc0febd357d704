"""Launching `tether train <method>` in one process or several (torchrun, gloo on CPU) for equality tests."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tether.methods.trainer import TRAINABLE_WEIGHTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPO = Path(__file__).resolve().parents[2]


def train(method: str, settings: list[str], out, processes: int, accelerate: list[str] | None = None) -> dict:
    """Run ``tether train <method> --set ...`` (``train.output_dir`` = ``out``); return its run.json.

    Several processes start under torchrun, or under ``accelerate launch <accelerate> --num_processes N``
    when ``accelerate`` gives its arguments (a config file of configs/accelerate/, from the repository root).
    """
    command = ["-m", "tether", "train", method] + [x for s in settings for x in ("--set", s)]
    command += ["--set", f"train.output_dir={out}"]
    if accelerate is not None:
        command = [
            "-m",
            "accelerate.commands.launch",
            *accelerate,
            "--num_processes",
            str(processes),
            "--main_process_port",
            str(free_port()),
        ] + command
    elif processes > 1:
        command = [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(processes),
            "--master_port",
            str(free_port()),
        ] + command
    # DS_ACCELERATOR=cpu: DeepSpeed's CPU accelerator (gloo), where there is no GPU
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // processes)), "DS_ACCELERATOR": "cpu"}
    result = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, timeout=600, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "run.json").read_text())


def assert_same_trained_weights(
    one, two, step: int, initial: dict[str, torch.Tensor], weights: str = TRAINABLE_WEIGHTS
) -> None:
    """The step-``step`` checkpoints of two runs hold the same trainable weights, which moved in training
    (``step`` None: the exported models, ``weights`` = ``model.safetensors``)."""
    folder = f"checkpoint-{step}" if step is not None else "model"
    a = load_file(one / folder / weights)
    b = load_file(two / folder / weights)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)
    # the comparison is not between two untouched copies: parameters of the VLM moved
    moved = [name for name in a if name in initial and not torch.equal(a[name], initial[name])]
    assert moved, "training did not change any VLM parameter"
