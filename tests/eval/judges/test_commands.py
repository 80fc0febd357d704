"""`tether judge ask` and `tether judge cache` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from chat_server import ok

SRC = Path(__file__).resolve().parents[3] / "src"


def run_cli(*args, env_extra=None):
    env = os.environ | {"PYTHONPATH": str(SRC)} | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "tether", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_ask_prints_reply_settings_and_usage_and_caches(chat_server, tmp_path):
    server = chat_server(default=ok("rating: 4"))
    args = ["judge", "ask", "--set", "model=judge-test", "--set", f"base_url={server.base_url}"]
    args += [
        "--set",
        "api_key_env=JUDGE_KEY",
        "--set",
        f"cache_dir={tmp_path}",
        "--system",
        "be strict",
        "hi",
    ]
    first = run_cli(*args, env_extra={"JUDGE_KEY": "sk-test-SECRET123"})
    assert first.returncode == 0, first.stderr
    reply, record, report = first.stdout.strip().splitlines()
    assert reply == "rating: 4"
    assert json.loads(record)["judge"]["model"] == "judge-test"
    assert json.loads(record)["usage"]["prompt_tokens"] == 3  # "be strict hi"
    assert "0 from cache" in report
    again = run_cli(*args, env_extra={"JUDGE_KEY": "sk-test-SECRET123"})
    assert "1 from cache), 0 requests" in again.stdout and len(server.requests) == 1
    assert "SECRET123" not in first.stdout + first.stderr + again.stdout + again.stderr

    summary = run_cli("judge", "cache", str(tmp_path))
    assert summary.returncode == 0
    assert "1 replies from judge-test" in summary.stdout and "3 prompt + 2 completion" in summary.stdout


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    result = run_cli("judge", "ask", "hi")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "tether: error: judge model is not set (the `model` field of the judge config)"
    )
    assert run_cli("judge", "cache", str(tmp_path)).returncode == 2


def test_cache_reports_damaged_lines_with_exit_code_1(tmp_path):
    (tmp_path / "judge_cache.jsonl").write_text('{"key": "k", "reply": "r", "checksum": "0"}\n')
    result = run_cli("judge", "cache", str(tmp_path))
    assert result.returncode == 1
    assert "damaged lines (ignored): 1" in result.stdout
    assert "judge_cache.jsonl:1: checksum mismatch" in result.stderr


def test_help_is_useful():
    out = run_cli("judge", "ask", "--help").stdout
    assert "OpenAI-compatible" in out and "--set" in out
