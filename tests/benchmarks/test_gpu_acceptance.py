"""``benchmarks/gpu/acceptance.py --tiny``: the GPU acceptance script runs end to end on CPU (so it cannot rot)
and writes every figure it promises."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_acceptance_tiny_writes_every_figure(tmp_path):
    out = tmp_path / "acceptance.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu" / "acceptance.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    lines = done.stdout.splitlines()
    assert lines[-1].endswith(f"every figure in {out}")
    assert lines[-2].startswith("ratio tether/trl pairs_per_s: ")

    environment = figures["environment"]
    assert environment["device"] == "cpu" and environment["dtype"] == "float32"
    assert {"torch", "transformers", "trl", "tether"} <= set(environment["versions"])

    llava, qwen = figures["models"]["llava_1_5_7b"], figures["models"]["qwen2_5_vl_7b"]
    # the tiny sizes' own token counts: 56 px in 14 px patches; Qwen merges 2x2 of them
    assert (llava["visual_tokens"], qwen["visual_tokens"]) == (16, 4)
    assert (llava["vocab_size"], llava["hidden_size"], qwen["hidden_size"]) == (1000, 64, 64)

    def positive(value):
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

    dpo = figures["dpo"]
    for side in ("tether", "trl"):
        assert positive(dpo[side]["pairs_per_s"]) and positive(dpo[side]["peak_memory_mb"])
    assert dpo["ratio_pairs_per_s"] == dpo["tether"]["pairs_per_s"] / dpo["trl"]["pairs_per_s"]
    assert positive(dpo["ratio_peak_memory"])
    for family in ("llava_1_5_7b", "qwen2_5_vl_7b"):
        pope = figures["pope"][family]
        assert pope["questions"] == 12 and positive(pope["ratio_questions_per_s"])
        # the random models answer yes/no by construction, so both modes must decide alike
        assert pope["agreement"] >= 0.9, pope
        for mode in ("generate", "fast"):
            assert positive(pope[mode]["questions_per_s"]) and 0 <= pope[mode]["accuracy"] <= 1
        hacl = figures["hacl"][family]
        assert positive(hacl["plain"]["step_s"]) and positive(hacl["hacl"]["step_s"])
        assert hacl["ratio_step_time"] == hacl["hacl"]["step_s"] / hacl["plain"]["step_s"]
    ppo = figures["ppo"]
    assert positive(ppo["step_s"]) and positive(ppo["peak_memory_mb"]) and math.isfinite(ppo["kl"])
