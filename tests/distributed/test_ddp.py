"""Two CPU processes (torchrun, gloo) give the weights of one process with the same global batch."""

import json
import os
import subprocess
import sys

import torch
from ddp_helpers import free_port
from ddp_helpers import train as run_method
from PIL import Image
from safetensors.torch import load_file

from tether.methods.trainer import TRAINABLE_WEIGHTS


def write_data(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i in range(16):
        colour = ["red", "blue", "green", "white"][i % 4]
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        # one-word answers: every shard has the same number of response tokens, so per-process mean
        # losses averaged by DDP equal the single-process mean exactly
        rows.append({"image": f"{i}.png", "question": "what color is it ?", "answer": colour})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, images


def train(checkpoint, data, images, out, processes, per_device_batch):
    settings = [
        f"model.path={checkpoint}",
        f"data.train=[{data}]",
        f"data.images={images}",
        "train.max_steps=4",
        "train.save_steps=4",
        "train.learning_rate=1e-3",
        f"train.per_device_train_batch_size={per_device_batch}",
        "train.progress_bar=false",
        "train.lr_scheduler_type=constant",
    ]
    return run_method("sft", settings, out, processes)


def test_two_processes_equal_one_with_same_global_batch(tmp_path):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(
        TinyConfig(arch="llava"), tmp_path / "tiny", ["red", "blue", "green", "white"]
    )
    data, images = write_data(tmp_path)
    single = train(checkpoint, data, images, tmp_path / "one", processes=1, per_device_batch=4)
    double = train(checkpoint, data, images, tmp_path / "two", processes=2, per_device_batch=2)
    assert single["world_size"] == 1 and double["world_size"] == 2
    a = load_file(tmp_path / "one" / "checkpoint-4" / TRAINABLE_WEIGHTS)
    b = load_file(tmp_path / "two" / "checkpoint-4" / TRAINABLE_WEIGHTS)
    assert a.keys() == b.keys()
    from tether.models import load

    initial = {f"model.{n}": p for n, p in load(checkpoint).model.named_parameters()}
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)
    # and training did move them (the comparison is not between two untouched copies)
    assert all(not torch.equal(a[name], initial[name]) for name in a)


def test_launcher_flag_runs_two_processes(tmp_path):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(TinyConfig(arch="qwen2_vl"), tmp_path / "tiny", ["red", "blue"])
    data, images = write_data(tmp_path)
    out = tmp_path / "launched"
    settings = [
        f"model.path={checkpoint}",
        f"data.train=[{data}]",
        f"data.images={images}",
        f"train.output_dir={out}",
        "train.max_steps=2",
        "train.per_device_train_batch_size=2",
        "train.progress_bar=false",
    ]
    command = [sys.executable, "-m", "tether", "train", "sft", "--launcher", "torchrun", "--nproc", "2"]
    result = subprocess.run(
        command + [x for s in settings for x in ("--set", s)],
        capture_output=True,
        text=True,
        env={**os.environ, "PET_MASTER_PORT": str(free_port())},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
