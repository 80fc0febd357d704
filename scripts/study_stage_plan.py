"""Write a preset's stage plan: every stage the study would run (the baseline recipe's included), in order,
with its key, without training anything.

    PYTHONPATH=src python scripts/study_stage_plan.py full plan.json [--root /tmp/study-plan]

The world is built for real (keys read its files); each other stage records its name and key and writes a
fixed stand-in result with a marker as a real run writes it (later stages' keys read it). Keys hold the paths
they were made under: compare two plans made under the same ``--root``. Run it before and after a change that
must not move any stage (a refactor): equal files mean every existing study folder stays valid.
"""

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from tether.study.pipeline import run_seed
from tether.study.preset import PRESETS
from tether.study.stages import Stages, stage_key

# stages whose result is a data file that later stages read (the rest give a model folder or metrics)
FILE_STAGES = {
    "negatives",
    "negatives_test",
    "pairs",
    "pairs_val",
    "answer_pairs",
    "pref_descriptions",
    "rule_reward_pairs",
}
STAND_IN_RUN = {"eval": {"accuracy": 0.5, "pairs": 3}, "unlabeled_items": 1, "pseudo_labels_kept": 1}
STAND_IN_LOG = '{"step": 1, "kl": 0, "reward": 0, "response_length": 1}\n'


def recording_run(plan: list, real_run):
    def run(self, name, inputs, fn):
        folder = self.folder(name)
        key = stage_key(inputs, folder, self.root)
        plan.append([self.root.name, name, key])
        if name == "world_build":
            return real_run(self, name, inputs, fn)
        folder.mkdir(parents=True, exist_ok=True)
        if name.startswith(("eval/", "analysis/")):
            result = {}
        elif name in FILE_STAGES:
            result = str(folder / "data.jsonl")
            pair = {"images": ["x.png"], "prompt": "p", "chosen": "c", "rejected": "r"}
            (folder / "data.jsonl").write_text(json.dumps(pair) + "\n")
        else:
            result = str(folder / "model")
            (folder / "model").mkdir(exist_ok=True)
            (folder / "run.json").write_text(json.dumps({**STAND_IN_RUN, "mean_confidence": 0.5}))
            (folder / "log.jsonl").write_text(STAND_IN_LOG)
        (folder / "stage.json").write_text(json.dumps({"fingerprint": key, "result": result}))
        return result

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("out", help="the plan as JSON")
    parser.add_argument("--root", default="/tmp/study-plan", help="where the stand-in study is written")
    args = parser.parse_args()
    root = Path(args.root)
    if root.exists():
        shutil.rmtree(root)
    plan: list = []
    Stages.run = recording_run(plan, Stages.run)
    preset = PRESETS[args.preset]
    for seed in preset.seeds:
        run_seed(preset, seed, root / f"seed{seed}", False)
    Path(args.out).write_text(json.dumps({"preset": dataclasses.asdict(preset), "plan": plan}, indent=1))
    print(f"{len(plan)} stages: {args.out}")


if __name__ == "__main__":
    main()
