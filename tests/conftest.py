from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY_WORDS = "red blue green square circle triangle left right above below".split()


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
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


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
