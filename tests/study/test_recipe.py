"""The baseline recipe: stages run in order, are cached by fingerprint, and the same seed gives the same model."""

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file

from tether.study.recipe import BaselineRecipe, prepare_data, train_baseline
from tether.world.build import build_world
from tether.world.config import load_world_config

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


def short_recipe(seed: int) -> BaselineRecipe:
    recipe = BaselineRecipe(seed=seed, progress_bar=False)
    for stage in ("vision", "align", "qa", "sft"):
        setattr(recipe, stage, dataclasses.replace(getattr(recipe, stage), steps=3, batch_size=4))
    return recipe


def weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def _stamps(out) -> dict:
    """When each stage's marker (the random-init model's too) was last written."""
    return {s: (out / s / "stage.json").stat().st_mtime_ns for s in ("init", "vision", "align", "qa", "sft")}


def test_same_seed_same_baseline_and_rerun_skips(tmp_path):
    world = tmp_path / "world"
    build_world(load_world_config(SMOKE_CONFIG, ["image_size=96"]), world)
    first = train_baseline(world, tmp_path / "a", short_recipe(0))
    second = train_baseline(world, tmp_path / "b", short_recipe(0))
    other_seed = train_baseline(world, tmp_path / "c", short_recipe(1))
    a, b, c = weights(first), weights(second), weights(other_seed)
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)
    # a rerun finds every stage's fingerprint and trains nothing
    stamps = _stamps(tmp_path / "a")
    shown = dataclasses.replace(short_recipe(0), progress_bar=True)  # a display setting changes nothing
    assert train_baseline(world, tmp_path / "a", shown) == first
    assert stamps == _stamps(tmp_path / "a")


def test_recipe_data_come_from_the_world(tmp_path, smoke_world):
    files = prepare_data(smoke_world, tmp_path)
    qa = [json.loads(line) for line in files["qa"].read_text().splitlines()]
    assert qa and {r["response"] for r in qa} == {"Yes", "No"}  # the curriculum stage: existence only
    sft = [json.loads(line) for line in files["sft"].read_text().splitlines()]
    qa = [json.loads(line) for line in (smoke_world / "text" / "train_qa.jsonl").read_text().splitlines()]
    descriptions = (smoke_world / "text" / "train_descriptions.jsonl").read_text().splitlines()
    assert len(sft) >= len(qa) + len(descriptions)
    vision = [json.loads(line) for line in files["vision"].read_text().splitlines()]
    assert all(r["regions"] and all(len(g["labels"]) == 3 for g in r["regions"]) for r in vision)


def test_a_changed_stage_retrains_itself_and_what_follows_only(tmp_path):
    import shutil

    world = tmp_path / "world"
    build_world(load_world_config(SMOKE_CONFIG, ["image_size=96"]), world)
    out = tmp_path / "baseline"
    recipe = short_recipe(0)
    train_baseline(world, out, recipe)
    before = _stamps(out)

    recipe.sft = dataclasses.replace(recipe.sft, steps=4)
    train_baseline(world, out, recipe)
    after_sft = _stamps(out)
    assert {s for s in before if before[s] != after_sft[s]} == {"sft"}
    assert json.loads((out / "sft" / "run.json").read_text())["global_step"] == 4

    # the ground stage is off by default; turned on, it runs before qa and retrains qa and sft only
    assert not (out / "ground").exists()
    recipe.ground = dataclasses.replace(recipe.ground, steps=3, batch_size=4)
    train_baseline(world, out, recipe)
    after_ground = _stamps(out)
    assert {s for s in before if after_sft[s] != after_ground[s]} == {"qa", "sft"}
    assert json.loads((out / "ground" / "run.json").read_text())["global_step"] == 3
    qa_run = json.loads((out / "qa" / "run.json").read_text())
    assert str(out / "ground" / "model") in json.dumps(qa_run)  # qa starts from the ground stage

    recipe.align = dataclasses.replace(recipe.align, learning_rate=1e-4)
    train_baseline(world, out, recipe)
    after_align = _stamps(out)
    assert {s for s in before if after_ground[s] != after_align[s]} == {"align", "qa", "sft"}

    # a folder moved elsewhere is still the same baseline: nothing in a fingerprint is a path
    shutil.move(out, tmp_path / "moved")
    train_baseline(world, tmp_path / "moved", recipe)
    assert _stamps(tmp_path / "moved") == after_align

    # another architecture: a new random-init model, and every stage retrains from it
    recipe.model = dataclasses.replace(recipe.model, text_hidden=64)
    train_baseline(world, tmp_path / "moved", recipe)
    assert all(v != after_align[s] for s, v in _stamps(tmp_path / "moved").items())
    config = json.loads((tmp_path / "moved" / "init" / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == 64


def test_grounding_questions_are_true_of_their_scenes_and_join_sft_only_when_asked(tmp_path, smoke_world):
    from tether.world import vocab
    from tether.world.show import load_scenes

    scenes = {s.image: s for s in load_scenes(smoke_world, "train")}
    grid = json.loads((smoke_world / "world.json").read_text())["config"]["grid_size"]
    files = prepare_data(smoke_world, tmp_path / "default", seed=0)
    ground = [json.loads(line) for line in files["ground"].read_text().splitlines()]
    unique = sum(s.count(o.shape) == 1 for s in scenes.values() for o in s.objects)
    assert len(ground) == 3 * unique  # colour, size and position of every uniquely-shaped object
    for record in ground:
        scene = scenes[record["image"]]
        question = record["prompt"].split()
        (shape,) = vocab.extract_objects(record["prompt"])
        (obj,) = [o for o in scene.objects if o.shape == shape]
        truth = {
            "color": obj.color,
            "size": obj.size,
            "Where": vocab.position_name(*obj.cell, grid),
        }[question[0] if question[0] == "Where" else question[1]]
        assert record["response"] == truth, record
    default_sft = files["sft"].read_text().splitlines()
    with_grounding = prepare_data(smoke_world, tmp_path / "grounded", grounding_in_sft=True, seed=0)
    assert (
        with_grounding["sft"].read_text().splitlines()
        == default_sft + files["ground"].read_text().splitlines()
    )
