"""The study's evaluation (full preset) of one model: python evaluate.py MODEL WORLD OUT"""

import json
import sys
from pathlib import Path

from tether.study.evaluate import evaluate_model
from tether.study.preset import PRESETS

m = evaluate_model(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), PRESETS["full"].eval_limits, False)
Path(sys.argv[3]).mkdir(parents=True, exist_ok=True)
(Path(sys.argv[3]) / "metrics.json").write_text(json.dumps(m, indent=1))
print(
    json.dumps(
        {
            k: round(m[k], 4)
            for k in [
                "pope_random/accuracy",
                "pope_adversarial/f1",
                "chair/chair_i",
                "shr/shr",
                "mmhal/average_score",
            ]
        }
    )
)
