"""A whole judged evaluation run (`tether -v eval shr run` with an LLM judge on loopback): the API key reaches
the server and nothing else — not the debug log, results.json, samples.jsonl, the judge cache or an error."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from chat_server import ok, status

SECRET = "sk-test-SECRET123"
SRC = Path(__file__).resolve().parents[3] / "src"


def test_key_never_in_logs_results_cache_or_errors(chat_server, tmp_path):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path / "tiny", ["a", "red", "ball"])
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for name in ("a", "b"):
        Image.new("RGB", (16, 16), "red").save(images / f"{name}.png")
        rows.append({"image_id": name, "image": f"{name}.png", "facts": ["a red ball"]})
    (tmp_path / "shr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the first reply is an error echoing the Authorization header, as some proxies do; then it recovers
    server = chat_server(
        [status(500, message="bad key {authorization}")], default=ok("Judgement:\n1. correct: fine")
    )
    cache = tmp_path / "cache"
    config = tmp_path / "judge.yaml"
    config.write_text(
        f"model: judge-test\nbase_url: {server.base_url}\napi_key_env: JUDGE_KEY\nbackoff: 0.01\n"
        f"max_retries: 2\ncache_dir: {cache}\n"
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tether", "-v", "eval", "shr", "run", "--model", str(checkpoint)]
    command += ["--items", str(tmp_path / "shr.jsonl"), "--images", str(images), "--out", str(out)]
    command += ["--judge-config", str(config), "--max-new-tokens", "4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "JUDGE_KEY": SECRET, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r["headers"]["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    assert "500" in result.stderr  # the failed request was logged, masked
    written = sorted(p for folder in (out, cache) for p in folder.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"results.json", "samples.jsonl", "judge_cache.jsonl"}
    texts = {"output": result.stdout + result.stderr, **{str(p): p.read_text() for p in written}}
    assert json.loads((out / "results.json").read_text())["judge"]["model"] == "judge-test"
    assert [name for name, text in texts.items() if "SECRET123" in text] == []

    # an error that ends the run (every attempt refused) is one line and masks the key too
    server.default = status(401, message="bad key {authorization}")
    shutil.rmtree(out)
    shutil.rmtree(cache)
    failed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 2 and "SECRET123" not in failed.stdout + failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("tether: error:")]
    assert len(errors) == 1 and "bad key Bearer ***" in errors[0]
