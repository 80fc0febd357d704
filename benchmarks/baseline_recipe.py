"""Wall time and peak memory of the world baseline recipe, stage by stage, and the baseline's metrics.

    python benchmarks/baseline_recipe.py [--out runs/bench-baseline] [--seed 0] [--threads 2]

Builds the study world, trains the recipe's stages (lm, vision, align, qa, sft) and evaluates POPE (three
splits, fast yes/no mode) and CHAIR (generated descriptions). Prints one line per stage and the metrics.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from tether.methods.run_record import peak_rss_mb
from tether.study.evaluate import evaluate_world
from tether.study.recipe import STAGES, BaselineRecipe, train_baseline
from tether.world.build import build_world
from tether.world.config import load_world_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world-config", default="configs/world/study.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bench", nargs="+", default=["pope_random", "pope_popular", "pope_adversarial", "chair"]
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="world config overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    world = out / "world"
    build_world(load_world_config(args.world_config, [f"seed={args.seed}", *args.overrides]), world)
    print(f"world       {time.perf_counter() - start:7.1f} s")
    train_start = time.perf_counter()
    model = train_baseline(world, out / "baseline", BaselineRecipe(seed=args.seed, progress_bar=False))
    for stage in STAGES:
        if not (out / "baseline" / stage / "run.json").is_file():
            continue  # a stage with 0 steps
        record = json.loads((out / "baseline" / stage / "run.json").read_text())
        print(f"{stage:<11} {record['wall_seconds']:7.1f} s   peak RSS {record['peak_rss_mb']:7.0f} MB")
    train_seconds = time.perf_counter() - train_start
    eval_start = time.perf_counter()
    metrics = evaluate_world(world, out / "eval", model_path=model, progress=False, names=args.bench)
    eval_seconds = time.perf_counter() - eval_start
    print(f"train total {train_seconds:7.1f} s   eval {eval_seconds:.1f} s   peak RSS {peak_rss_mb():.0f} MB")
    for name, values in metrics.items():
        shown = {
            k: round(v, 4)
            for k, v in values.items()
            if isinstance(v, float)
            and k in ("accuracy", "f1", "precision", "recall", "yes_ratio", "chair_i", "chair_s", "recall")
        }
        print(f"{name:<18} {shown}")


if __name__ == "__main__":
    main()
