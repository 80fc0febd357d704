import subprocess
import sys


def run_cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "tether", *args], capture_output=True, text=True, check=check
    )


def test_top_level_help_lists_verbs():
    out = run_cli("--help").stdout
    assert "models" in out


def test_every_verb_has_help():
    for verb in (["models"], ["models", "info"], ["models", "tiny"]):
        assert "usage: tether" in run_cli(*verb, "--help").stdout


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = run_cli("models", "info", str(tmp_path / "missing"), check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "tether: error:" in result.stderr and "not a local checkpoint folder" in result.stderr


def test_tiny_then_info(tmp_path):
    run_cli("models", "tiny", "--arch", "qwen2_vl", "--out", str(tmp_path / "q"), "--words", "red square")
    out = run_cli("models", "info", str(tmp_path / "q")).stdout
    assert "qwen2_vl" in out and "<|image_pad|>" in out
