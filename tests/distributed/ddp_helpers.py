"""Launching `tether train <method>` in one process or several (torchrun, gloo on CPU) for equality tests."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from tether.methods.trainer import TRAINABLE_WEIGHTS
from tether.models import load
from tether.models.tiny import TinyConfig, build_tiny_checkpoint


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


COLOURS = ["red", "blue", "green", "white"]
SHAPES = ["square", "circle", "triangle", "square"]


def build_checkpoint(folder) -> Path:
    """The tiny llava the equality tests train, with a vocabulary that spells their records."""
    words = COLOURS + SHAPES[:3] + "a what is it ? describe".split()
    return build_tiny_checkpoint(TinyConfig(arch="llava"), folder, words)


def initial_weights(checkpoint) -> dict[str, torch.Tensor]:
    """The checkpoint's parameters before training, named as the trainer's checkpoints name them."""
    return {f"model.{n}": p.detach().clone() for n, p in load(checkpoint).model.named_parameters()}


def images(tmp_path, n=8):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (32, 32), COLOURS[i % 4]).save(folder / f"{i}.png")
    return folder


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def preference_pairs(n=8) -> list[dict]:
    """DPO pairs, one per image: the true colour and shape against a wrong colour and shape."""
    return [
        {
            "prompt": "what is it ?",
            "chosen": f"a {COLOURS[i % 4]} {SHAPES[i % 4]}",
            "rejected": f"a {COLOURS[(i + 1) % 4]} {SHAPES[(i + 2) % 4]}",
            "images": [f"{i}.png"],
        }
        for i in range(n)
    ]


def captions_and_negatives(n=8) -> tuple[list[dict], list[dict]]:
    """HACL's captions (three tokens each, so per-process token means average to the global one) and one
    object negative per caption."""
    captions, negatives = [], []
    for i in range(n):
        caption = f"a {COLOURS[i % 4]} {SHAPES[i % 4]}"
        captions.append({"image": f"{i}.png", "prompt": "describe", "response": caption})
        wrong = SHAPES[(i + 1) % 3] if SHAPES[(i + 1) % 3] != SHAPES[i % 4] else SHAPES[(i + 2) % 3]
        negatives.append(
            {"image": f"{i}.png", "caption": caption, "negative": f"a {COLOURS[i % 4]} {wrong}", "kinds": ["object"]}
        )
    return captions, negatives
