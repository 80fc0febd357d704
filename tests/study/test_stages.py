"""The study's one stage cache: keys come from the config objects whole, so no field can be left out of them."""

import dataclasses
import json
import logging
from pathlib import Path

from tether.methods.settings import ModelSettings, TrainSettings
from tether.methods.sft import SFTConfig, SFTData
from tether.study import recipe as recipe_module
from tether.study.recipe import BaselineRecipe, train_baseline
from tether.study.stages import Stages


def counting(calls: list, name: str):
    def fn(folder):
        calls.append(name)
        (folder / "model").mkdir()
        return str(folder / "model")

    return fn


def test_a_field_no_call_site_lists_reruns_the_stage_and_an_unchanged_rerun_runs_nothing(tmp_path, caplog):
    stages, calls = Stages(tmp_path), []
    train = TrainSettings(output_dir=str(tmp_path / "s"), max_steps=3)
    stages.run("s", [train], counting(calls, "first"))
    stages.run("s", [train], counting(calls, "again"))
    stages.run("s", [dataclasses.replace(train, progress_bar=False)], counting(calls, "display only"))
    assert calls == ["first"]

    # a field no call site names: before, a stage's key was only the fields listed beside it
    with caplog.at_level(logging.INFO, logger="tether.study.stages"):
        stages.run("s", [dataclasses.replace(train, weight_decay=0.1)], counting(calls, "weight_decay"))
    assert "stage s: its inputs changed (0.fields.weight_decay)" in caplog.text
    # a field added to the config class at runtime joins the key with no edit anywhere else
    Extended = dataclasses.make_dataclass("TrainSettings", [("new_knob", int, 1)], bases=(TrainSettings,))
    extended = Extended(**dataclasses.asdict(train), new_knob=1)
    stages.run("s", [extended], counting(calls, "new field"))
    stages.run("s", [extended], counting(calls, "new field again"))
    assert calls == ["first", "weight_decay", "new field"]
    marker = json.loads((tmp_path / "s" / "stage.json").read_text())
    assert (
        marker["inputs"][0]["fields"]["new_knob"] == 1 and "progress_bar" not in marker["inputs"][0]["fields"]
    )


def test_a_model_counts_by_the_key_of_the_stage_that_made_it(tmp_path):
    stages, calls = Stages(tmp_path), []

    def chain(upstream_steps: int):
        model = stages.run("up", [TrainSettings(max_steps=upstream_steps)], counting(calls, "up"))
        config = SFTConfig(model=ModelSettings(path=model), data=SFTData(train=["x.jsonl"]))
        stages.run("down", [config], counting(calls, "down"))

    chain(3)
    chain(3)
    assert calls == ["up", "down"]
    chain(4)  # the same path, another model: every stage after it reruns
    assert calls == ["up", "down", "up", "down"]


def test_a_stage_of_an_earlier_key_version_is_redone_in_an_emptied_folder(tmp_path):
    folder = tmp_path / "align"
    folder.mkdir()
    # what key version 1 left: a fingerprint of hand-listed fields, and the stage's output beside it
    (folder / "stage.json").write_text(json.dumps({"fingerprint": "0123456789abcdef", "result": "old"}))
    (folder / "started.json").write_text(json.dumps({"fingerprint": "0123456789abcdef"}))
    (folder / "checkpoint-3").mkdir()
    calls = []
    result = Stages(tmp_path).run("align", [TrainSettings(max_steps=3)], counting(calls, "align"))
    assert calls == ["align"] and result == str(folder / "model")
    assert not (folder / "checkpoint-3").exists()  # never resumed from, never mixed with the new run


def test_a_field_added_to_the_recipes_config_retrains_the_stages_built_with_it(
    tmp_path, smoke_world, monkeypatch
):
    trained = []

    def fake_train(config):
        trained.append(type(config).__name__ + ":" + config.train.output_dir.rsplit("/", 1)[-1])
        model = Path(config.train.output_dir) / "model"
        model.mkdir(parents=True, exist_ok=True)
        return model

    monkeypatch.setattr(recipe_module, "train_sft", fake_train)
    monkeypatch.setattr(recipe_module, "train_vision", fake_train)
    monkeypatch.setattr(
        recipe_module, "build_tiny_checkpoint", lambda model, out, words: trained.append("init")
    )
    recipe = BaselineRecipe(seed=0, progress_bar=False)
    out = tmp_path / "baseline"
    train_baseline(smoke_world, out, recipe)
    assert trained == ["init", "VisionConfig:vision", "SFTConfig:align", "SFTConfig:qa", "SFTConfig:sft"]
    train_baseline(smoke_world, out, recipe)
    assert len(trained) == 5  # an unchanged rerun trains nothing

    ExtendedSFT = dataclasses.make_dataclass("SFTConfig", [("new_knob", int, 1)], bases=(SFTConfig,))
    monkeypatch.setattr(recipe_module, "SFTConfig", ExtendedSFT)
    train_baseline(smoke_world, out, recipe)
    # the text stages are built with SFTConfig, the vision stage (and the random init) are not
    assert trained[5:] == ["SFTConfig:align", "SFTConfig:qa", "SFTConfig:sft"]
