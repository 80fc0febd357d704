"""Pilot: a grounding curriculum for the baseline recipe (colour, size and position questions of every
uniquely-shaped object, from the scene graphs), seed 3, 128x3 LLM.

    python pilot.py G1|G2 OUT_SEED_DIR WORLD_DIR
G1: the qa stage trains on existence questions + grounding questions (same 2000 steps).
G2: the qa stage as it is, then a grounding stage (existence + grounding, 2000 steps), then SFT.
G3: G1, and the grounding questions join the SFT data too (1000 SFT steps).
G4: G3 with 2000 SFT steps.
G5: a grounding stage (grounding questions alone, 2000 steps) between align and qa, then the qa stage as it is
    (existence, 2000 steps), then SFT with the grounding questions in its data (1000 steps).
G6 / G7: the qa stage trains on existence questions three times over + grounding questions, 4000 / 6000 steps,
    then SFT with the grounding questions in its data (1000 steps).
"""

import random
import sys
from pathlib import Path

from tether.core.io import read_jsonl, write_jsonl
from tether.study.recipe import STAGES, BaselineRecipe, _initial_checkpoint, _run_stage, prepare_data
from tether.world import texts
from tether.world.scene import Scene

variant, seed_dir, world = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
seed_dir.mkdir(parents=True, exist_ok=True)
if not (seed_dir / "world").exists():
    (seed_dir / "world").symlink_to(world)
out = seed_dir / "baseline"
recipe = BaselineRecipe(seed=3, progress_bar=False)
data = prepare_data(world, out / "data", recipe.existence_repeats)

rng = random.Random(3)
grounding = []
for s in read_jsonl(world / "scenes" / "train.jsonl"):
    scene = Scene.from_dict(s) if hasattr(Scene, "from_dict") else Scene(**s)
    for i, obj in enumerate(scene.objects):
        if scene.count(obj.shape) != 1:
            continue
        name = texts.pick_name(rng, obj.shape)
        for question, answer in [
            (texts.COLOR_QUESTION.format(name=name), obj.color),
            (texts.SIZE_QUESTION.format(name=name), obj.size),
            (texts.WHERE_QUESTION.format(ref=name), texts.position_of(scene, i, 3)),
        ]:
            grounding.append({"image": s["image"], "prompt": texts.capitalize(question), "response": answer})
existence = list(read_jsonl(data["qa"]))
print(len(grounding), "grounding questions,", len(existence), "existence")
ground_file = out / "data" / "ground.jsonl"
write_jsonl(ground_file, existence + grounding)
grounding_only = out / "data" / "ground_only.jsonl"
write_jsonl(grounding_only, grounding)

if variant in ("G6", "G7"):
    write_jsonl(ground_file, existence * 3 + grounding)
    recipe.qa.steps = {"G6": 4000, "G7": 6000}[variant]
if variant in ("G3", "G4", "G5", "G6", "G7"):
    sft_file = out / "data" / "sft_ground.jsonl"
    write_jsonl(sft_file, list(read_jsonl(data["sft"])) + grounding)
    data = {**data, "sft": sft_file}
if variant == "G4":
    recipe.sft.steps = 2000
model_path, upstream = _initial_checkpoint(recipe, out / "init")
for stage in STAGES:
    if stage == "qa" and variant in ("G1", "G3", "G4", "G6", "G7"):
        data = {**data, "qa": ground_file}
    if stage == "qa" and variant == "G5":
        model_path, upstream = _run_stage(
            "qa", recipe, model_path, upstream, {"qa": grounding_only}, world, out / "ground"
        )
    if stage == "sft" and variant == "G2":
        model_path, upstream = _run_stage(
            "qa", recipe, model_path, upstream, {"qa": ground_file}, world, out / "ground"
        )
    model_path, upstream = _run_stage(stage, recipe, model_path, upstream, data, world, out)
print("model", model_path)
