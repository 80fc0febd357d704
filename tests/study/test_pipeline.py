"""`tether study`: the quick preset end to end (the README's first command), presets, stages, report rows."""

import dataclasses
import json
import subprocess
import sys

from tether.core.stats import mean_interval
from tether.study.pipeline import run_study
from tether.study.preset import PRESETS
from tether.study.statistics import BENCHMARK_METRICS, summarise, verdict
from tether.study.variants import VARIANTS


def test_quick_study_writes_a_report(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "-m", "tether", "study", "--preset", "quick", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {out / 'report.md'}" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["0"]) == set(PRESETS["quick"].variants)
    import torch

    environment = json.loads((out / "environment.json").read_text())
    assert environment["versions"]["torch"] == torch.__version__
    assert environment["cpu"]["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    for values in metrics["0"].values():
        assert {key for key, _, _ in BENCHMARK_METRICS} <= set(values)
    # the baseline is the shipped one (tether.study.shipped), and the stages built on it say so
    seed0 = metrics["0"]
    stamp = json.loads((out / "seed0" / "baseline" / "sft" / "stage.json").read_text())
    assert stamp["inputs"][0]["shipped"] == "quick" and stamp["result"].endswith("baseline/sft/model")
    assert json.loads((out / "seed0" / "timings.json").read_text())["baseline"]["shipped"] == "quick"
    # the shipped baseline hallucinates along the bias (issue 30's bar)
    baseline = seed0["baseline"]
    assert baseline["pope_random/accuracy"] >= 0.78
    assert baseline["pope_random/f1"] - baseline["pope_adversarial/f1"] >= 0.08
    # the analysis stages' metrics sit beside the benchmarks, on the variants they compare
    assert {"reward/accuracy_facts", "reward/accuracy_vanilla", "ppo/kl_last"} <= set(seed0["fact_rlhf"])
    assert 0 <= seed0["fact_rlhf"]["reward/accuracy_vanilla"] <= 1
    # HA-DPO: a pair for every preference question (balanced), and the SFT term on two true descriptions of
    # each preference image
    counts = json.loads((out / "seed0" / "answer_pairs" / "counts.json").read_text())
    assert counts["selected"] == counts["questions"] and 2 * counts["chosen_yes"] == counts["pairs"]
    for stage in ("ha_dpo", "noiseboost_dpo"):
        run = json.loads((out / "seed0" / stage / "run.json").read_text())
        assert run["pairs"] == counts["pairs"] and run["sft_records"] == 2 * PRESETS["quick"].world["n_pref"]
    report = (out / "report.md").read_text()
    assert all(f"| {variant} |" in report for variant in PRESETS["quick"].variants)
    for heading in ("## The papers' claims", "## Reward model and PPO (Fact-RLHF)"):
        assert heading in report
    # one seed: HA-DPO's POPE and CHAIR claims get paired bootstrap intervals over the evaluated items
    claims = {line.split(" | ")[1]: line for line in report.splitlines() if line.startswith("| HA-DPO |")}
    # on every POPE-adversarial question of the test images and the preset's CHAIR descriptions
    questions = len(
        (out / "seed0" / "world" / "bench" / "pope" / "world_pope_adversarial.jsonl").read_text().splitlines()
    )
    assert baseline["pope_adversarial/n"] == questions > 4000
    assert f"({questions} items, one seed)" in claims["POPE-adversarial F1 up vs the baseline"]
    chair = PRESETS["quick"].eval_limits["chair"]
    assert f"({chair} items, one seed)" in claims["CHAIR_i down vs the baseline"]
    assert "smoke: shorter than full in pair_images; reward_steps; ppo_steps" in report
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 2
    assert html.count("<figcaption>") == 2
    # a rerun finds every stage done and only rewrites the report
    again = subprocess.run(
        [sys.executable, "-m", "tether", "study", "--preset", "quick", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0
    assert "tether.study.stages: stage " not in again.stderr and " steps from " not in again.stderr


def test_intervals_and_verdicts_by_hand():
    mean, half = mean_interval([0.5, 0.7, 0.6])
    assert mean == 0.6
    assert abs(half - 4.302653 * 0.1 / 3**0.5) < 1e-7
    assert mean_interval([0.4]) == (0.4, None)
    assert verdict(0.05, 0.01, True) == "helps" and verdict(0.05, 0.01, False) == "hurts"
    assert (
        verdict(0.05, 0.1, True) == "no significant change"
        and verdict(0.05, None, True) == "one seed: no claim"
    )
    metrics = {
        s: {"baseline": {"pope_adversarial/f1": b}, "hacl": {"pope_adversarial/f1": h}}
        for s, (b, h) in enumerate([(0.60, 0.66), (0.62, 0.67), (0.61, 0.67)])
    }
    cells = summarise(metrics)["hacl"]["pope_adversarial/f1"]
    assert abs(cells[2] - (0.06 + 0.05 + 0.06) / 3) < 1e-12 and verdict(cells[2], cells[3], True) == "helps"


def test_preference_variants_without_a_preference_split_stop_before_any_stage(tmp_path):
    import dataclasses

    import pytest

    from tether.core.errors import TetherError

    preset = dataclasses.replace(
        PRESETS["quick"], world={**PRESETS["quick"].world, "n_pref": 0}, variants=list(VARIANTS)
    )
    with pytest.raises(TetherError, match=r"\['combo', 'fact_rlhf', 'ha_dpo', 'noiseboost_dpo'\] need"):
        run_study(preset, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()  # nothing built, nothing trained


def test_a_moved_study_folder_is_refused_before_any_stage_deletes_its_models(tmp_path):
    import pytest

    from tether.core.errors import TetherError

    # a seed folder made elsewhere (then moved here): its world and a trained model
    seed_dir = tmp_path / "moved" / "seed0"
    (seed_dir / "world_build").mkdir(parents=True)
    (seed_dir / "world_build" / "stage.json").write_text(
        json.dumps({"fingerprint": "0", "result": "/elsewhere/study/seed0/world"})
    )
    model = seed_dir / "baseline" / "sft" / "model" / "model.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    with pytest.raises(TetherError, match=r"made as /elsewhere/study/seed0.*pass --out exactly"):
        run_study(PRESETS["quick"], tmp_path / "moved", progress=False)
    assert model.read_bytes() == b"weights"
    assert sorted(p.name for p in seed_dir.iterdir()) == ["baseline", "world_build"]


def test_noise_schedule_reaches_the_noiseboost_stages(tmp_path):
    import dataclasses

    import pytest

    from tether.core.errors import TetherError
    from tether.methods.noise import noise_from_settings
    from tether.study.context import Context

    def noise_settings(schedule):
        preset = dataclasses.replace(PRESETS["full"], noise_schedule=schedule)
        return Context(preset, 0, tmp_path, tmp_path, None, None, False).noiseboost(True)

    # the default keeps the settings (and so the stage fingerprints) of runs made before the option existed
    assert noise_settings("constant") == {"scale": 0.5, "relative": True}
    cosine = noise_from_settings(noise_settings("cosine"))
    cosine.progress = 0.5
    assert abs(cosine.current_scale - 0.25) < 1e-12  # halfway down from 0.5 to 0
    preset = dataclasses.replace(PRESETS["quick"], noise_schedule="sine")
    with pytest.raises(TetherError, match=r"noise_schedule 'sine' unknown; choose from \['constant'"):
        run_study(preset, tmp_path / "study", progress=False)
    preset = dataclasses.replace(PRESETS["quick"], reward_pairs="llm")
    with pytest.raises(
        TetherError, match=r"reward_pairs 'llm' unknown; choose from \['descriptions', 'rule'\]"
    ):
        run_study(preset, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


def test_reward_and_ppo_settings_reach_their_stage_keys_through_the_configs(tmp_path):
    import dataclasses

    from tether.study import rlhf
    from tether.study.context import Context
    from tether.study.stages import stage_key

    class RecordingStages:
        root = tmp_path

        def __init__(self):
            self.keys = {}

        def folder(self, name):
            return tmp_path / name

        def run(self, name, inputs, fn):
            self.keys[name] = stage_key(inputs, self.folder(name), self.root)
            return str(pairs)

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"images": ["a.png"], "prompt": "p", "chosen": "c", "rejected": "r"}\n')
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "train.jsonl").write_text("")
    (tmp_path / "scenes" / "val.jsonl").write_text("")

    def fact_rlhf_keys(**settings):
        stages = RecordingStages()
        preset = dataclasses.replace(PRESETS["full"], **settings)
        rlhf.fact_rlhf(Context(preset, 0, tmp_path, tmp_path, None, stages, False))
        return stages.keys

    default = fact_rlhf_keys()
    assert list(default) == ["pairs", "pairs_val", "reward", "ppo"]
    assert fact_rlhf_keys() == default
    # no list names these settings: each reaches its stage's key through the config it builds
    for settings, changed in [
        ({"reward_lora": False}, {"reward"}),
        ({"reward_learning_rate": 3e-4}, {"reward"}),
        ({"reward_steps": 61}, {"reward"}),
        ({"ppo_lora": False}, {"ppo"}),
        ({"ppo_learning_rate": 1e-4}, {"ppo"}),
        ({"ppo_kl_coef": 0.3}, {"ppo"}),
        ({"ppo_length_bonus": 1.0}, {"ppo"}),
        ({"pair_backend": "vllm"}, {"pairs", "pairs_val"}),
    ]:
        keys = fact_rlhf_keys(**settings)
        assert {name for name in keys if keys[name] != default[name]} == changed, settings
    rule = fact_rlhf_keys(reward_pairs="rule")
    assert (
        list(rule) == ["rule_reward_pairs", "pairs_val", "reward", "ppo"]
        and rule["reward"] != default["reward"]
    )


def test_ppo_settings_reach_the_ppo_config(tmp_path, monkeypatch):
    import dataclasses

    from tether.study import rlhf
    from tether.study.context import Context

    class PPOStageOnly:  # every other stage as cached; the PPO stage runs, up to train_ppo
        root = tmp_path

        def folder(self, name):
            return tmp_path / name

        def run(self, name, parts, fn):
            return fn(tmp_path / name) if name == "ppo" else str(pairs)

    pairs = tmp_path / "pairs.jsonl"  # what every cached stage gives: the reward stage then has pairs
    files = [
        ("world.json", "{}"),
        *[(f"scenes/{split}.jsonl", "") for split in ("train", "val", "pref")],
        ("text/pref_questions.jsonl", ""),
        (pairs, "{}\n"),
    ]
    for path, text in files:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    configs = []
    monkeypatch.setattr(rlhf, "train_ppo", lambda config: configs.append(config) or "policy")
    settings = {"ppo_lora": False, "ppo_learning_rate": 1e-4, "ppo_kl_coef": 0.3, "ppo_length_bonus": 2.0}
    preset = dataclasses.replace(PRESETS["full"], ppo_steps=60, **settings)
    assert rlhf.fact_rlhf(Context(preset, 0, tmp_path, tmp_path, None, PPOStageOnly(), False)) == "policy"
    (config,) = configs
    assert config.model.lora is None and config.ppo.value_lora is None  # both LLMs fully fine-tuned
    assert (config.train.max_steps, config.train.learning_rate) == (60, 1e-4)
    assert (config.ppo.kl_coef, config.ppo.length_bonus) == (0.3, 2.0)
    assert config.ppo.reward_model == str(pairs)


def test_recipe_settings_reach_the_baseline_recipe_and_typos_stop_before_any_stage(tmp_path):
    import dataclasses

    import pytest

    from tether.core.errors import TetherError
    from tether.study.preset import baseline_recipe
    from tether.study.recipe import BaselineRecipe

    # the full preset trains the recipe as it is: same settings, so the same stage fingerprints
    assert baseline_recipe(PRESETS["full"], 3) == BaselineRecipe(seed=3, progress_bar=False)
    preset = dataclasses.replace(
        PRESETS["full"], recipe={"sft": 2000, "model": {"text_hidden": 256, "text_layers": 4}}
    )
    recipe = baseline_recipe(preset, 3)
    default = BaselineRecipe().model
    assert (recipe.model.text_hidden, recipe.model.text_layers) == (256, 4)
    assert dataclasses.replace(recipe.model, text_hidden=128, text_layers=3) == default
    assert (recipe.sft.steps, recipe.sft.learning_rate, recipe.qa.steps) == (2000, 1e-3, 2000)
    for recipe_settings, message in [
        ({"stf": 10}, r"recipe: unknown keys \['stf'\]; choose from \['lm'"),
        ({"model": {"hiden": 256}}, r"recipe.model: unknown fields \['hiden'\]; choose from \['arch'"),
        ({"model": {"seed": 1}}, r"recipe.model: unknown fields \['seed'\]"),  # the study's seed rules
    ]:
        typo = dataclasses.replace(PRESETS["quick"], recipe=recipe_settings)
        with pytest.raises(TetherError, match=message):
            run_study(typo, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


def test_the_recipes_grounding_curriculum_follows_hacls_stage_1_too(tmp_path):
    import dataclasses

    from tether.study import hacl
    from tether.study.context import Context
    from tether.study.preset import baseline_recipe

    class RecordingStages:
        def __init__(self):
            self.names = []

        def folder(self, name):
            return tmp_path / name

        def run(self, name, parts, fn):
            self.names.append(name)
            return str(tmp_path / name / "model")

    def hacl_stages(recipe_settings):
        preset = dataclasses.replace(PRESETS["full"], recipe=recipe_settings)
        recipe = baseline_recipe(preset, 0)
        stages = RecordingStages()
        hacl.hacl(Context(preset, 0, tmp_path, tmp_path, recipe, stages, False))
        return stages.names, recipe

    names, recipe = hacl_stages({})
    assert names == ["negatives", "hacl_align", "hacl_qa", "hacl_sft"] and not recipe.grounding_in_sft
    names, recipe = hacl_stages({"ground": 2000, "grounding_in_sft": True})
    assert names == ["negatives", "hacl_align", "hacl_ground", "hacl_qa", "hacl_sft"]
    assert (recipe.ground.steps, recipe.grounding_in_sft) == (2000, True)


def test_rows_say_whether_they_are_smoke_or_measurement():
    from tether.study.report import row_levels

    quick = row_levels(dataclasses.asdict(PRESETS["quick"]), VARIANTS)
    # the quick recipe (align 400 of full's 600) passed the bar of a real baseline: a measurement
    assert quick["baseline"] == quick["ha_dpo"] == quick["noiseboost_dpo"] == "measurement"
    assert quick["fact_rlhf"] == "smoke: shorter than full in pair_images; reward_steps; ppo_steps"
    shorter = row_levels({**dataclasses.asdict(PRESETS["quick"]), "recipe": {"align": 300}}, VARIANTS)
    assert shorter["baseline"] == "smoke: shorter than full in baseline recipe (align)"
    assert set(row_levels(dataclasses.asdict(PRESETS["full"]), VARIANTS).values()) == {"measurement"}
    short_dpo = row_levels({**dataclasses.asdict(PRESETS["full"]), "dpo_steps": 100}, VARIANTS)
    assert (
        short_dpo["ha_dpo"] == "smoke: shorter than full in dpo_steps" and short_dpo["hacl"] == "measurement"
    )
