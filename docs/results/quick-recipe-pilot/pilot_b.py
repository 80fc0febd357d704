"""Run B: run A's baseline folder copied, qa 2000 steps (vision and align reused from their fingerprints).

python pilot_b.py RUN_A OUT  (RUN_A: the study folder of run A; OUT: a fresh folder for run B's baseline)
"""

import dataclasses
import shutil
import sys
import time
from pathlib import Path

from tether.study.recipe import BaselineRecipe, train_baseline

run_a, out = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(run_a / "seed0" / "baseline", out)
recipe = BaselineRecipe(seed=0, progress_bar=False)
for stage, steps in {"vision": 300, "align": 400, "qa": 2000, "sft": 300}.items():
    setattr(recipe, stage, dataclasses.replace(getattr(recipe, stage), steps=steps))
start = time.perf_counter()
print(train_baseline(run_a / "seed0" / "world", out, recipe), f"{time.perf_counter() - start:.0f} s")
