"""`tether study --jobs N`: one process per seed, threads split, at most N at once, failures named."""

import argparse

import pytest

from tether import study_commands
from tether.errors import TetherError


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


def args(jobs, variants=None):
    return argparse.Namespace(preset="full", jobs=jobs, variants=variants)


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
