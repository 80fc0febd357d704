"""Does storing the shipped baseline in float16 or bfloat16 change its metrics? Rounds every weight of a
model folder through each dtype (back to float32, as the model computes), evaluates POPE (three splits) and
CHAIR (100 descriptions) as the quick preset does: python eval_storage.py MODEL WORLD OUT."""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.models import load
from tether.study.evaluate import evaluate_world
from tether.world.judge import WorldRuleJudge

model, world, out = (Path(a) for a in sys.argv[1:4])
names = ["pope_random", "pope_popular", "pope_adversarial", "chair"]
limits = {"chair": 100}  # the quick preset's eval_limits (POPE: every question)
results = {}
for dtype in ("float32", "float16", "bfloat16"):
    folder = out / dtype
    shutil.copytree(model, folder, dirs_exist_ok=True)
    weights = load_file(model / "model.safetensors")
    rounded = {k: v.to(getattr(torch, dtype)).to(v.dtype) for k, v in weights.items()}
    save_file(rounded, folder / "model.safetensors", metadata={"format": "pt"})
    vlm = load(folder)
    results[dtype] = {}
    for name in names:
        metrics = evaluate_world(world, out / f"eval-{dtype}", vlm=vlm, names=[name], limit=limits.get(name),
                                 progress=False, judge=WorldRuleJudge(world))[name]
        results[dtype][name] = {k: v for k, v in metrics.items() if k in ("accuracy", "f1", "chair_i")}
print(json.dumps(results, indent=1))
