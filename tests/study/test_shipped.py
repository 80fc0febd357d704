"""The quick preset's shipped baseline (tether.study.shipped): its files, when the quick preset takes it,
and the command that makes it."""

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import torch

from tether.core.errors import TetherError
from tether.study.preset import PRESETS, baseline_recipe, world_settings
from tether.study.shipped import MANIFEST, SHIPPED, install_shipped, manifest_digest, sha256, why_not_shipped

QUICK = PRESETS["quick"]


def _world_config(preset, seed=0):
    from tether.world.config import load_world_config

    settings = {**world_settings(preset), "seed": seed}
    return load_world_config(None, [f"{k}={json.dumps(v)}" for k, v in settings.items()])


def test_shipped_files_are_the_manifests():
    folder = SHIPPED / QUICK.shipped_baseline
    manifest = json.loads((folder / MANIFEST).read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, *manifest["files"]])
    for name, digest in manifest["files"].items():
        assert sha256(folder / name) == digest, name
    weights = [name for name in manifest["files"] if name.endswith(".safetensors")]
    assert weights == ["model.safetensors"]
    assert not [name for name in manifest["files"] if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    # made for the quick preset: its seed, world and recipe, by the command the manifest names
    assert manifest["seed"] == QUICK.seeds[0] and manifest["command"].startswith(
        "tether study --make-baseline"
    )
    assert manifest["world"] == json.loads(json.dumps(dataclasses.asdict(_world_config(QUICK))))
    assert manifest["recipe"]["align"]["steps"] == QUICK.recipe["align"] and manifest["code_version"]
    # the bar of a real baseline (issue 30): it answers POPE and hallucinates along the bias
    metrics = manifest["metrics"]
    assert metrics["pope_random/accuracy"] >= 0.78
    assert metrics["pope_random/f1"] - metrics["pope_adversarial/f1"] >= 0.08


def test_the_quick_preset_takes_the_shipped_baseline(tmp_path):
    from tether.world.build import build_world

    recipe = baseline_recipe(QUICK, 0)
    assert why_not_shipped(QUICK, 0, _world_config(QUICK), recipe) is None
    # installing it needs only the world's text files (the recipe's data); a small world serves
    small = dataclasses.replace(QUICK, world={**QUICK.world, "n_train": 20, "n_test": 4})
    world = tmp_path / "world"
    build_world(_world_config(small), world)
    model = install_shipped(QUICK, world, tmp_path / "baseline", recipe)
    folder = SHIPPED / QUICK.shipped_baseline
    manifest = json.loads((folder / MANIFEST).read_text())
    others = {name: digest for name, digest in manifest["files"].items() if name != "model.safetensors"}
    assert {name: sha256(model / name) for name in others} == others
    # the weights are stored in float16 and installed in float32, the model's dtype, value for value
    from safetensors.torch import load_file

    stored, installed = load_file(folder / "model.safetensors"), load_file(model / "model.safetensors")
    assert stored.keys() == installed.keys()
    for key, value in stored.items():
        assert value.dtype == torch.float16 and installed[key].dtype == torch.float32
        assert torch.equal(installed[key], value.float())
    assert (tmp_path / "baseline" / "data" / "sft.jsonl").is_file()
    # it is the recipe's sft stage, keyed by the manifest: every stage built on it records which baseline
    stage = json.loads((tmp_path / "baseline" / "sft" / "stage.json").read_text())
    shipped, manifest_key = stage["inputs"]
    assert shipped == {"shipped": "quick", "code_version": manifest["code_version"]}
    assert manifest_key["sha256"][:16] == manifest_digest(folder / MANIFEST)
    again = install_shipped(QUICK, world, tmp_path / "baseline", recipe)
    assert again == model and json.loads((tmp_path / "baseline" / "sft" / "stage.json").read_text()) == stage


def test_decoding_variants_of_the_final_models_take_the_shipped_baseline():
    preset = dataclasses.replace(QUICK, variants=["baseline", "vcd", "opera", "ha_dpo+vcd", "fact_rlhf+pai"])
    assert why_not_shipped(preset, 0, _world_config(preset), baseline_recipe(preset, 0)) is None
    preset = dataclasses.replace(QUICK, variants=["baseline", "vcd", "hacl+vcd"])
    found = why_not_shipped(preset, 0, _world_config(preset), baseline_recipe(preset, 0))
    assert "variants ['hacl+vcd'] start from the recipe's earlier stages" in found


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"seeds": [1]}, "seed 1, the shipped baseline's is 0"),
        ({"world": {**QUICK.world, "n_train": 400}}, r"world settings \['n_train'\] differ"),
        ({"recipe": {**QUICK.recipe, "sft": 500}}, r"recipe settings \['sft'\] differ"),
        ({"variants": ["baseline", "hacl"]}, r"variants \['hacl'\] start from the recipe's earlier stages"),
    ],
)
def test_another_run_trains_its_baseline_and_says_why(change, reason):
    preset = dataclasses.replace(QUICK, **change)
    seed = preset.seeds[0]
    found = why_not_shipped(preset, seed, _world_config(preset, seed), baseline_recipe(preset, seed))
    assert found is not None
    import re

    assert re.search(reason, found), found


def test_a_shipped_file_that_is_not_the_manifests_is_refused(tmp_path, monkeypatch):
    import tether.study.shipped as shipped

    copy = tmp_path / "baselines" / QUICK.shipped_baseline
    shutil.copytree(SHIPPED / QUICK.shipped_baseline, copy)
    with open(copy / "config.json", "a") as stream:
        stream.write(" ")
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "baselines")
    with pytest.raises(TetherError, match=r"config.json: missing or not the file .*manifest.json records"):
        why_not_shipped(QUICK, 0, _world_config(QUICK), baseline_recipe(QUICK, 0))


def _refuse_training(*args, **kwargs):
    raise AssertionError("make_baseline trained where it had nothing to do or had to refuse")


def test_make_baseline_keeps_its_folder_unless_told(tmp_path, monkeypatch, run_cli):
    """Same settings: nothing to do; other settings, or a folder of other files: refused before training,
    naming the difference, unless --overwrite (the project's rule for output folders)."""
    from tether.study import make_baseline as making
    from tether.study.make_baseline import make_baseline

    monkeypatch.setattr(making, "run_study", _refuse_training)
    made = tmp_path / "quick"
    shutil.copytree(SHIPPED / QUICK.shipped_baseline, made)
    before = {p.name: sha256(p) for p in made.iterdir()}
    assert make_baseline(QUICK, made, tmp_path / "work") == made / MANIFEST
    other = ["--set", "world.n_test=300", "--set", "eval_limits.chair=50"]
    code, _, err = run_cli("study", "--make-baseline", made, "--out", tmp_path / "work", *other)
    assert code != 0 and "eval_limits.chair, world.n_test differ" in err and "--overwrite" in err
    assert {p.name: sha256(p) for p in made.iterdir()} == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(TetherError, match=r"non-empty folder without manifest.json"):
        make_baseline(QUICK, stray, tmp_path / "work")
    assert (stray / "notes.txt").read_text() == "mine"
    # --overwrite goes on to train (here: the stand-in that says so)
    with pytest.raises(AssertionError, match="trained"):
        run_cli("study", "--make-baseline", made, "--out", tmp_path / "work", *other, "--overwrite")


# how close a retrain on another run (or CPU) must come to the shipped metrics, in points: on one machine
# the retrain repeats them exactly; the recipe's escape from the existence plateau depends on floating-point
# rounding (docs/baseline.md), so another CPU may move them by a few points
TOLERANCE = 0.03


@pytest.mark.slow
def test_make_baseline_retrains_the_shipped_metrics(tmp_path):
    """The documented command retrains the shipped baseline (minutes on 2 cores)."""
    out = tmp_path / "baseline"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "study",
            "--make-baseline",
            str(out),
            "--out",
            str(tmp_path / "work"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shipped = json.loads((SHIPPED / QUICK.shipped_baseline / MANIFEST).read_text())
    made = json.loads((out / MANIFEST).read_text())
    assert set(made["files"]) == set(shipped["files"])
    assert (made["seed"], made["recipe"], made["world"]) == (
        shipped["seed"],
        shipped["recipe"],
        shipped["world"],
    )
    for key in ("pope_random/accuracy", "pope_random/f1", "pope_adversarial/f1", "chair/chair_i"):
        assert abs(made["metrics"][key] - shipped["metrics"][key]) <= TOLERANCE, key
