import os
import sys
from pathlib import Path

import pytest

TINY_WORDS = "red blue green square circle triangle left right above below".split()


def find_shared_data(start: Path) -> Path | None:
    """``shared/data`` beside the checkout: CI checks ``shared/`` out beside the repository, and a helper
    worktree one level deeper (/work/wt/NAME beside /work/shared) finds the same folder, so search every
    folder above ``start`` rather than a fixed depth."""
    for parent in start.resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def require_shared_data(path: Path | None, in_ci: bool) -> Path:
    """``path``, or stop the test: a failure in CI (where the data must be), a skip with the reason elsewhere."""
    if path is not None:
        return path
    message = "shared benchmark data not found: no shared/data in any folder above the checkout"
    if in_ci:
        pytest.fail(f"{message} (CI=true: CI must check shared/ out beside the repository)", pytrace=False)
    pytest.skip(message)


SHARED_DATA = find_shared_data(Path(__file__))


@pytest.fixture
def run_cli(capsys):
    """Run `tether ...` in process; return (exit code, stdout, stderr)."""
    from tether.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files and published outputs (``shared/data``, see its SOURCES file)."""
    return require_shared_data(SHARED_DATA, os.environ.get("CI") == "true")


def pytest_terminal_summary(terminalreporter):
    """Say it at the end of every run, not only under ``-rs``, when the shared data was missing."""
    if SHARED_DATA is None and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(
            "note: shared/data was not found above the checkout, so the tests that read the real benchmark "
            "files were skipped (set CI=true to make that a failure)",
            yellow=True,
        )


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models gain nothing from more, and on a busy 2-core machine
    OpenMP's spinning threads slow them down many times over."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    """One tiny llava checkpoint, for tests whose options do not depend on the architecture."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_llava"), TINY_WORDS)


@pytest.fixture(scope="session", params=["llava", "qwen2_vl"])
def tiny_checkpoint(request, tmp_path_factory) -> Path:
    """A saved tiny random-init checkpoint of each supported architecture."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    out = tmp_path_factory.mktemp(f"tiny_{request.param}")
    return build_tiny_checkpoint(TinyConfig(arch=request.param), out, TINY_WORDS)


@pytest.fixture(scope="session")
def tiny_vlm(tiny_checkpoint):
    from tether.models import load

    return load(tiny_checkpoint)


@pytest.fixture
def noise_scales(monkeypatch) -> list[float]:
    """The scale of every NoiseBoost perturbation applied while the test runs, in order."""
    from tether.methods.noise import VisualNoise

    scales, forward = [], VisualNoise.forward

    def recording_forward(self, features):
        scales.append(round(self.current_scale, 6))
        return forward(self, features)

    monkeypatch.setattr(VisualNoise, "forward", recording_forward)
    return scales


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each test starts with accelerate's process-wide state as a new process finds it. A user runs one
    command per process; here one process runs them all, and the state fixes mixed precision at its first
    use, so a bf16 Trainer test would otherwise refuse every later ``Accelerator(mixed_precision="no")``."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory) -> Path:
    """The world of configs/world/smoke.yaml (60 train and 24 test scenes, images under images/, benchmark
    exports under bench/), built once per session: tests only read it."""
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    out = tmp_path_factory.mktemp("smoke_world") / "smoke"
    build_world(load_world_config(Path(__file__).resolve().parents[1] / "configs" / "world" / "smoke.yaml"), out)
    return out
