import subprocess
import sys


def run_cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "tether", *args], capture_output=True, text=True, check=check
    )


def test_top_level_help_lists_verbs():
    out = run_cli("--help").stdout
    assert "models" in out
