import subprocess
import sys
from pathlib import Path

from world_helpers import SMOKE_CONFIG

SRC = Path(__file__).resolve().parents[2] / "src"


def run_cli(*args):
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True, text=True, env=env)


def test_build_then_show(tmp_path):
    out = tmp_path / "w"
    done = run_cli("world", "build", "--config", str(SMOKE_CONFIG), "--out", str(out), "--set", "n_train=30")
    assert done.returncode == 0, done.stderr
    assert "built 74 scenes" in done.stdout and "pope_adversarial" in done.stdout
    shown = run_cli("world", "show", str(out), "--split", "test", "--index", "2")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("test_2  (images/test_2.png)")
    for part in ("objects:", "captions:", "descriptions:", "qa:", "conversations:"):
        assert part in shown.stdout


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    done = run_cli("world", "build", "--out", str(tmp_path / "w"), "--set", "max_objects=9")
    assert done.returncode == 2 and done.stderr.startswith("tether: error: world config")
    assert "Traceback" not in done.stderr
    done = run_cli("world", "show", str(tmp_path))
    assert done.returncode == 2 and "not a world folder" in done.stderr


def test_help_lists_the_verbs():
    done = run_cli("world", "--help")
    assert done.returncode == 0 and "build" in done.stdout and "show" in done.stdout
