"""kill -9 during evaluation and during training: the rerun resumes and ends where an uninterrupted run does.

Real processes (`python -m tether ...`) are killed with SIGKILL once their output shows they are under way
(samples.jsonl has answers / a checkpoint is complete). Files are polled; the timeouts are only guards.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tether.methods.trainer import TRAINABLE_WEIGHTS, last_complete_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
GUARD_S = 300


def tether(*args) -> list[str]:
    return [sys.executable, "-m", "tether", *map(str, args)]


def run(command, log: Path):
    with open(log, "w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=ENV, timeout=GUARD_S)
    assert result.returncode == 0, log.read_text()[-3000:]


def kill_when(command, ready, log: Path) -> None:
    """Start ``command``, SIGKILL it as soon as ``ready()``; fail if it ends by itself first."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.monotonic() + GUARD_S
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended (code {process.returncode}) before it could be killed:\n{log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the run never reached the point to kill it")
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    words = "red blue green square circle is there a in the image yes no".split()
    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny"), words)


def test_evaluation_killed_mid_run_resumes_to_the_same_results(checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i in range(20):
        Image.new("RGB", (32, 32), ["red", "blue", "green"][i % 3]).save(images / f"{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no"), ("image", "yes")):
            rows.append(
                {
                    "question_id": len(rows),
                    "image": f"{i}.png",
                    "text": f"is there a {shape} ?",
                    "label": label,
                }
            )
    questions = tmp_path / "world_pope_random.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def command(out):
        return tether(
            "eval", "pope", "run", "--model", checkpoint, "--questions", questions, "--images", images,
            "--out", out, "--batch-size", 1, "--max-new-tokens", 6, "--no-progress",
        )  # fmt: skip

    run(command(tmp_path / "straight"), tmp_path / "straight.log")
    samples = tmp_path / "killed" / "samples.jsonl"
    kill_when(
        command(tmp_path / "killed"),
        lambda: samples.is_file() and samples.read_bytes().count(b"\n") >= 3,
        tmp_path / "killed.log",
    )
    answered = samples.read_bytes().count(b"\n")
    assert answered < len(rows) and not (tmp_path / "killed" / "results.json").exists()

    run(command(tmp_path / "killed"), tmp_path / "resumed.log")
    assert f"{len(rows) - answered} of {len(rows)} items to answer" in (tmp_path / "resumed.log").read_text()
    straight = json.loads((tmp_path / "straight" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert resumed["metrics"] == straight["metrics"] and resumed["n_samples"] == len(rows)
    answers = {
        name: [
            (s["id"], s["answer"])
            for s in map(json.loads, (tmp_path / name / "samples.jsonl").read_text().splitlines())
        ]
        for name in ("straight", "killed")
    }
    assert answers["killed"] == answers["straight"]


def test_training_killed_mid_run_resumes_to_the_same_weights(checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red", "blue", "green", "red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "question": "is there a square ?", "answer": colour})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def command(out):
        settings = [
            f"model.path={checkpoint}", f"data.train=[{data}]", f"data.images={images}", f"train.output_dir={out}",
            "train.max_steps=24", "train.save_steps=4", "train.per_device_train_batch_size=2",
            "train.learning_rate=1e-3", "train.progress_bar=false",
        ]  # fmt: skip
        return tether("train", "sft", *[x for s in settings for x in ("--set", s)])

    run(command(tmp_path / "straight"), tmp_path / "straight.log")
    killed = tmp_path / "killed"
    kill_when(
        command(killed),
        lambda: (killed / "checkpoint-4" / "trainer_state.json").is_file(),
        tmp_path / "killed.log",
    )
    last = last_complete_checkpoint(killed, "trainer_state.json")
    assert last is not None and not (killed / "checkpoint-24").exists()
    # as if the kill had also torn the next checkpoint mid-save: the resume must not pick it
    step = int(Path(last).name.split("-")[1]) + 4
    torn = killed / f"checkpoint-{step}"
    if not (torn / "trainer_state.json").is_file():
        torn.mkdir(exist_ok=True)
        save_file({"garbage": torch.zeros(1)}, torn / TRAINABLE_WEIGHTS)

    run(command(killed), tmp_path / "resumed.log")
    assert f"resuming from {last}" in (tmp_path / "resumed.log").read_text()
    straight = load_file(tmp_path / "straight" / "checkpoint-24" / TRAINABLE_WEIGHTS)
    resumed = load_file(killed / "checkpoint-24" / TRAINABLE_WEIGHTS)
    assert straight.keys() == resumed.keys() and len(straight) > 0
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=1e-5)


def test_incomplete_checkpoints_are_skipped(tmp_path):
    for step, state in ((2, "{}"), (4, "{}"), (6, '{"global_st'), (8, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path, "trainer_state.json") == str(tmp_path / "checkpoint-4")
    assert last_complete_checkpoint(tmp_path / "checkpoint-8", "trainer_state.json") is None
