"""Write a preset's stage plan: every stage the study would run, in order, with its fingerprint, and the
baseline recipe's stage fingerprints, without training anything.

    PYTHONPATH=src python scripts/study_stage_plan.py full plan.json [--root /tmp/study-plan]

The world is built for real (fingerprints read its files); each other stage records its name and fingerprint
and writes a fixed stand-in result, and the recipe's training calls are replaced by empty model folders, so the
recipe's own stage markers (their fingerprints) are written as a real run writes them. Fingerprints hold the
paths they were made under: compare two plans made under the same ``--root``. Run it before and after a
change that must not move any stage (a refactor): equal files mean every existing study folder stays valid.
"""

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import tether.study.recipe as recipe_module
from tether.core.fingerprints import fingerprint
from tether.study.pipeline import run_seed
from tether.study.preset import PRESETS
from tether.study.stages import Stages

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
    def run(self, name, parts, fn):
        stage_fingerprint = fingerprint(*parts)
        plan.append([self.root.name, name, stage_fingerprint])
        if name == "world_build":
            return real_run(self, name, parts, fn)
        folder = self.root / name
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
        (folder / "stage.json").write_text(json.dumps({"fingerprint": stage_fingerprint, "result": result}))
        return result

    return run


def empty_model(config):
    model = Path(config.train.output_dir) / "model"
    model.mkdir(parents=True, exist_ok=True)
    return model


def empty_checkpoint(config, out, words):
    Path(out).mkdir(parents=True, exist_ok=True)
    return Path(out)


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
    recipe_module.train_sft = recipe_module.train_vision = empty_model
    recipe_module.build_tiny_checkpoint = empty_checkpoint
    preset = PRESETS[args.preset]
    for seed in preset.seeds:
        seed_dir = root / f"seed{seed}"
        run_seed(preset, seed, seed_dir, False)
        for marker in sorted((seed_dir / "baseline").glob("*/stage.json")):
            recipe_fingerprint = json.loads(marker.read_text())["fingerprint"]
            plan.append([seed_dir.name, f"baseline/{marker.parent.name}", recipe_fingerprint])
    Path(args.out).write_text(json.dumps({"preset": dataclasses.asdict(preset), "plan": plan}, indent=1))
    print(f"{len(plan)} stages: {args.out}")


if __name__ == "__main__":
    main()
