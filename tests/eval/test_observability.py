"""Problem 9 of issue 23: tensorboard, -v, Ctrl-C, progress bars, FutureWarnings, the docs' modes."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from everyday_helpers import write_pope_split
from PIL import Image

from tether.core.errors import TetherError

ROOT = Path(__file__).resolve().parents[2]


def test_tensorboard_missing_is_a_one_line_error_naming_the_extra(monkeypatch):
    import importlib.util

    from tether.methods.settings import TrainSettings
    from tether.methods.trainer import training_arguments

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("tensorboard") else find_spec(name, *a),
    )
    with pytest.raises(TetherError, match=r"pip install 'tether\[tensorboard\]'"):
        training_arguments(TrainSettings(report_to=["tensorboard"]))
    training_arguments(TrainSettings(report_to=["none"]))  # nothing asked, nothing needed
    extras = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^tensorboard = \[\"tensorboard", extras, re.M)


def test_verbose_shows_tethers_debug_and_the_first_prompt_not_pil(tiny_llava, tmp_path):
    questions, images = write_pope_split(tmp_path, "random", n_images=1)
    result = subprocess.run(
        [
            sys.executable, "-m", "tether", "-v", "eval", "pope", "run", "--model", str(tiny_llava),
            "--questions", str(questions), "--images", str(images), "--out", str(tmp_path / "out"),
            "--mode", "fast", "--no-progress",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEBUG tether.eval.runner: first prompt, as the model sees it:" in result.stderr
    assert "Is there a square in the image?" in result.stderr
    assert "DEBUG tether.models.loading" in result.stderr  # tether's own debug lines
    assert " DEBUG PIL" not in result.stderr and "STREAM b'IHDR'" not in result.stderr


def test_ctrl_c_says_how_to_resume(monkeypatch, tmp_path, run_cli):
    import tether.eval.runner
    import tether.methods.sft

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    questions, images = write_pope_split(tmp_path, "random", n_images=1)
    monkeypatch.setattr(tether.eval.runner, "run_benchmark", interrupted)
    code, _, err = run_cli(
        "eval", "pope", "run", "--model", tmp_path, "--questions", questions, "--images", images,
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 130 and "interrupted; run the same command again to resume" in err
    monkeypatch.setattr(tether.methods.sft, "train_sft", interrupted)
    code, _, err = run_cli("train", "sft")
    assert code == 130 and "resume from the newest checkpoint in train.output_dir" in err


def test_ppo_shows_a_progress_bar(tiny_llava, tmp_path, capsys):
    from tether.core.config import load_config
    from tether.methods.ppo import PPOConfig, train_ppo
    from tether.methods.reward import RewardModel
    from tether.models import load

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), "red").save(images / "0.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"image": "0.png", "prompt": "what color is it ?", "facts": ["red"]}) + "\n"
    )
    reward_model = RewardModel(load(tiny_llava)).save(tmp_path / "rm")
    config = load_config(
        PPOConfig,
        None,
        [
            f"model.path={tiny_llava}",
            f"data.train=[{prompts}]",
            f"data.images={images}",
            f"ppo.reward_model={reward_model}",
            f"train.output_dir={tmp_path / 'ppo'}",
            "ppo.rollout_batch_size=2",
            "ppo.mini_batch_size=2",
            "ppo.max_new_tokens=2",
            "train.max_steps=2",
            "train.save_steps=0",
        ],
    )
    capsys.readouterr()
    train_ppo(config, score_fn=lambda records, responses: [0.0] * len(responses))
    err = capsys.readouterr().err
    assert re.search(r"ppo: 100%.*2/2", err), err[-1000:]


def test_fast_mode_raises_no_future_warning(tiny_llava):
    from tether.decoding.yes_no import yes_no_margins
    from tether.models import load

    vlm = load(tiny_llava)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        margins = yes_no_margins(vlm, Image.new("RGB", (32, 32), "red"), ["is it red ?", "is it blue ?"])
    assert margins.shape == (2,)


def test_docs_name_only_modes_the_cli_has():
    from tether.cli import build_parser

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["eval"]._subparsers._group_actions[0].choices["pope"]
    run = run._subparsers._group_actions[0].choices["run"]
    modes = next(a.choices for a in run._actions if a.dest == "mode")
    text = (ROOT / "docs" / "evaluation.md").read_text()
    named = set()
    for found in re.findall(r"--mode ([\w|]+)", text):
        named |= set(found.split("|"))
    assert named and named <= set(modes), named - set(modes)
