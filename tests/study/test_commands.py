"""`tether study --jobs N`: one process per seed, threads split, at most N at once, failures named."""

import argparse

import pytest

from tether.core.errors import TetherError
from tether.study import commands as study_commands


class FakeProcess:
    started: list = []
    running = 0
    most_running = 0

    def __init__(self, command, env, stdout, stderr):
        self.command, self.env = command, env
        FakeProcess.started.append(self)
        FakeProcess.running += 1
        FakeProcess.most_running = max(FakeProcess.most_running, FakeProcess.running)

    def wait(self):
        FakeProcess.running -= 1
        return 1 if self.command[-1] == "7" else 0  # seed 7 fails


def args(jobs, variants=None, overrides=()):
    return argparse.Namespace(preset="full", jobs=jobs, variants=variants, overrides=list(overrides))


def test_seeds_run_in_parallel_processes(tmp_path, monkeypatch):
    monkeypatch.setattr("subprocess.Popen", FakeProcess)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    FakeProcess.started, FakeProcess.most_running = [], 0
    study_commands._run_seeds_in_parallel(args(2, ["hacl"]), [0, 1, 2], str(tmp_path))
    assert [p.command[-2:] for p in FakeProcess.started] == [
        ["--seeds", "0"],
        ["--seeds", "1"],
        ["--seeds", "2"],
    ]
    assert FakeProcess.most_running == 2
    first = FakeProcess.started[0]
    assert first.env["OMP_NUM_THREADS"] == "2"
    assert first.command[3:] == [
        "study",
        "--preset",
        "full",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--variants",
        "hacl",
        "--seeds",
        "0",
    ]
    assert (tmp_path / "seed0.log").is_file()


def test_a_failed_seed_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("subprocess.Popen", FakeProcess)
    with pytest.raises(TetherError, match=r"seeds \[7\] failed"):
        study_commands._run_seeds_in_parallel(args(3), [6, 7, 8], str(tmp_path))


def test_set_changes_the_preset_and_reaches_every_seed_process(tmp_path, monkeypatch):
    from tether.cli import main

    presets = []
    monkeypatch.setattr(
        "tether.study.pipeline.run_study", lambda p, out, progress: presets.append(p) or tmp_path / "r.md"
    )
    monkeypatch.setattr("subprocess.Popen", FakeProcess)
    FakeProcess.started = []
    overrides = [
        "--set",
        "noise_schedule=cosine",
        "--set",
        "world.n_train=800",
        "--set",
        "eval_limits.chair=50",
    ]
    command = ["study", "--preset", "full", "--seeds", "0", "1", "--jobs", "2", "--out", str(tmp_path)]
    assert main(command + overrides) == 0
    (preset,) = presets
    assert preset.noise_schedule == "cosine" and preset.seeds == [0, 1] and preset.dpo_steps == 200
    assert preset.world == {"n_train": 800} and preset.eval_limits == {"chair": 50, "shr": 150}
    assert [p.command[-8:] for p in FakeProcess.started] == [overrides + ["--seeds", s] for s in "01"]
    # each process re-reads the settings: --set first, then its own --seeds, even against a --set seeds
    presets.clear()
    FakeProcess.started = []
    assert (
        main(["study", "--preset", "full", "--jobs", "2", "--out", str(tmp_path), "--set", "seeds=[4,5]"])
        == 0
    )
    for process in FakeProcess.started:
        assert main(process.command[3:]) == 0
    assert [p.seeds for p in presets] == [[4, 5], [4], [5]]
    FakeProcess.started = []
    assert main(command + ["--set", "noise_shedule=cosine"]) == 2  # a typo is an error naming the key
    assert main(command + ["--set", "noise_schedule=sine"]) == 2  # a bad value, before any process starts
    assert FakeProcess.started == []
    assert main(["study", "--pool", "a", "--out", str(tmp_path / "p"), "--set", "dpo_steps=1"]) == 2
