"""`tether study`: the four papers' claims, reproduced in the synthetic world, end to end.

For each seed: build the world → train the baseline recipe (``tether.study.recipe``) → build every variant
(``tether.study.variants``: one module per method group) → evaluate every model on every benchmark with
identical settings (``tether.study.evaluate``) → the analysis stages (``tether.study.analyses``) → one report
(``tether.study.report``). Each step is a stage cached under the output folder by a fingerprint of its
settings and inputs (``tether.study.stages``), so a rerun skips what is done and an interrupted study
resumes. A preset with ``shipped_baseline`` takes that baseline (``tether.study.shipped``) instead of
training it when the run's world, recipe, seed and variants match it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from tether.core.io import write_json
from tether.core.provenance import environment
from tether.decoding.dispatch import resolve
from tether.study.analyses import seed_analyses
from tether.study.context import Context
from tether.study.decoding import decoding_settings
from tether.study.evaluate import evaluate_model
from tether.study.preset import StudyPreset, baseline_recipe, check_preset, world_settings
from tether.study.recipe import train_baseline
from tether.study.report import write_report
from tether.study.shipped import shipped_model
from tether.study.stages import Stages, refuse_moved
from tether.study.variants import BUILDERS, split_variant
from tether.world.build import build_world
from tether.world.config import load_world_config


def run_study(preset: StudyPreset, out_dir, progress: bool = True) -> Path:
    """Run every seed and variant of ``preset`` under ``out_dir``; returns the path of report.md."""
    check_preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "preset.json", dataclasses.asdict(preset))
    write_json(out_dir / "environment.json", environment())  # library versions, platform, CPU, time
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    for seed in preset.seeds:
        results[seed] = run_seed(preset, seed, out_dir / f"seed{seed}", progress)
        write_json(out_dir / "metrics.json", {str(s): r for s, r in results.items()})
    return write_report(out_dir)


def run_seed(preset: StudyPreset, seed: int, seed_dir: Path, progress: bool) -> dict:
    """One seed: world, baseline, variants, evaluation, analyses; returns ``{variant: metrics}``."""
    stages = Stages(seed_dir)
    settings = {**world_settings(preset), "seed": seed}
    world_config = load_world_config(None, [f"{k}={json.dumps(v)}" for k, v in settings.items()])
    world = seed_dir / "world"
    refuse_moved(seed_dir, world)

    def build(folder):
        build_world(world_config, world, overwrite=True)
        return str(world)

    stages.run("world_build", [world_config], build)

    recipe = baseline_recipe(preset, seed, progress)
    baseline_dir = seed_dir / "baseline"
    baseline = shipped_model(preset, seed, world_config, world, baseline_dir, recipe)
    baseline = baseline or str(train_baseline(world, baseline_dir, recipe))
    # the recipe's own stages record their training time; a rerun that skips them still reports it
    runs = [json.loads(p.read_text()) for p in sorted(baseline_dir.glob("*/run.json"))]
    stages.timings["baseline"] = {"seconds": sum(r.get("wall_seconds") or 0 for r in runs)}
    if not runs:  # the shipped baseline: trained once by `tether study --make-baseline`, not here
        stages.timings["baseline"]["shipped"] = preset.shipped_baseline

    models = {"baseline": baseline}
    ctx = Context(preset, seed, world, baseline_dir, recipe, stages, progress)
    for variant in preset.variants:
        if variant != "baseline":
            trained = split_variant(variant)[0]  # ha_dpo+vcd: ha_dpo's model, decoded with vcd
            models[variant] = models.get(trained) or BUILDERS[trained](ctx)

    metrics = {}
    for variant, model in models.items():
        decoding = decoding_settings(split_variant(variant)[1])
        # greedy evaluations keep the fingerprint they had before decoding strategies existed
        strategy = [] if decoding is None else [dataclasses.asdict(resolve(decoding))]
        metrics[variant] = stages.run(
            f"eval/{variant}",
            [model, preset.eval_limits, *strategy],
            lambda folder, model=model, decoding=decoding: evaluate_model(
                model, world, folder, preset.eval_limits, progress, decoding
            ),
        )
    for variant, extra in seed_analyses(ctx, models).items():
        metrics[variant].update(extra)
    write_json(seed_dir / "timings.json", stages.timings)
    return metrics
