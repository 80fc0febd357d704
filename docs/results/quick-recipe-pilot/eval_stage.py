"""POPE (three splits) of one baseline stage's model in a study folder: python eval_stage.py RUN STAGE."""

import json
import sys
from pathlib import Path

from tether.study.evaluate import evaluate_world

run, stage = Path(sys.argv[1]), sys.argv[2]
world = run / "seed0" / "world"
names = ["pope_random", "pope_popular", "pope_adversarial"]
metrics = evaluate_world(world, run / f"eval-{stage}", model_path=run / "seed0" / "baseline" / stage / "model",
                         names=names, progress=False)
out = {n: {k: metrics[n][k] for k in ("accuracy", "f1", "yes_ratio")} for n in names}
out["f1_gap"] = out["pope_random"]["f1"] - out["pope_adversarial"]["f1"]
print(json.dumps(out, indent=1))
