"""The study's settings: ``StudyPreset`` (every field a ``--set KEY=VALUE`` can change), the quick and full
presets, and the checks that stop a run with impossible settings before anything is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tether.core.errors import TetherError
from tether.methods.noise import SCHEDULES
from tether.models.tiny import TinyConfig
from tether.study.recipe import STAGES, BaselineRecipe
from tether.study.variants import PREFERENCE_VARIANTS, VARIANTS, split_variant

# the world of configs/world/study.yaml: 96 px, so one grid cell is one 32-px patch of the tiny tower, and
# pairs that co-occur 95% of the time in training scenes
STUDY_WORLD = {"image_size": 96, "cooccurrence_prob": 0.95, "n_pref": 500}
REWARD_PAIRS = ("descriptions", "rule")


@dataclass
class StudyPreset:
    name: str = "quick"
    seeds: list[int] = field(default_factory=lambda: [0])
    world: dict = field(default_factory=dict)  # overrides of configs/world/study.yaml
    # steps per baseline stage ({"vision": 150, "ground": 2000, ...}), "model": overrides of the recipe's
    # architecture (tether.models.tiny.TinyConfig fields: {"text_hidden": 256}), and RECIPE_OPTIONS
    recipe: dict = field(default_factory=dict)
    hacl_weight: float = 1.0
    noise_scale: float = 0.5
    # NoiseBoost's scale over a stage: constant, or linear / cosine decay to 0 (tether.methods.noise)
    noise_schedule: str = "constant"
    dpo_steps: int = 200
    dpo_beta: float = 0.1
    dpo_learning_rate: float = 2e-4
    # γ of HA-DPO's auxiliary SFT loss, on the preference images' true descriptions (0 = off)
    dpo_sft_weight: float = 2.0
    answer_pairs_select: str = "all"  # which questions become HA-DPO's yes/no pairs: all | wrong
    pair_images: int = 200
    pair_backend: str = "hf"  # how the pair stage samples descriptions: hf | vllm (tether[vllm])
    reward_steps: int = 60
    # the reward models' training pairs: "descriptions" (the baseline's descriptions of pair_images train
    # images against their corrected versions) or "rule" (every training description of the SFT data
    # against its rule-written rewrite); held-out pairs are the first kind, of val images, either way
    reward_pairs: str = "descriptions"
    reward_lora: bool = True  # false: the reward models fine-tune the whole LLM
    reward_learning_rate: float = 2e-3
    ppo_steps: int = 15
    ppo_lora: bool = True  # false: policy and value model fine-tune the whole LLM
    ppo_learning_rate: float = 1e-3
    ppo_kl_coef: float = 0.1  # the per-token KL penalty's fixed coefficient (LLaVA-RLHF's 0.1)
    # + ppo_length_bonus · response tokens / max_new_tokens on each score: LLaVA-RLHF's length term, against
    # a policy that climbs its reward by answering shorter (0 = off)
    ppo_length_bonus: float = 0.0
    reward_eval_images: int = 100  # val-split images whose pairs measure reward-model accuracy
    ssl_images: int = 600  # unlabeled images pseudo-labelled (other half of train + unlabeled split)
    ssl_threshold: float = 0.7  # keep pseudo-labels whose mean token probability is at least this
    analysis_images: int = 40  # test images for the modality gap and the attention share
    attention_max_new_tokens: int = 48
    eval_limits: dict = field(default_factory=dict)  # benchmark -> max items
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    # a baseline shipped with tether (tether/baselines/<name>, tether.study.shipped), taken instead of
    # training when its world, recipe, seed and the variants match; "" = always train
    shipped_baseline: str = ""


PRESETS = {
    # one seed in ≤ 3 min on 2 cores: the baseline (run D's recipe of docs/results/quick-recipe-pilot) ships
    # with tether; HA-DPO learns from 100 preference images and is measured on every POPE-adversarial
    # question of 1200 test images, enough items that the paired bootstrap could detect the paper's POPE
    # effect (docs/results/quick-preset-hadpo)
    "quick": StudyPreset(
        name="quick",
        seeds=[0],
        world={"n_train": 2000, "n_val": 20, "n_test": 1200, "n_unlabeled": 20, "n_pref": 100},
        recipe={"vision": 300, "align": 400, "qa": 2000, "sft": 1000},
        dpo_steps=200,
        pair_images=24,
        reward_steps=10,
        ppo_steps=3,
        reward_eval_images=20,
        ssl_images=40,
        ssl_threshold=0.25,
        analysis_images=12,
        attention_max_new_tokens=32,
        eval_limits={
            "pope_random": 400,
            "pope_popular": 400,
            "pope_adversarial": 100000,
            "chair": 400,
            "mmhal": 16,
            "shr": 20,
        },
        variants=["baseline", "ha_dpo", "noiseboost_dpo", "fact_rlhf"],
        shipped_baseline="quick",
    ),
    # the measurement: full recipe, three seeds (≤ 30 min on 2 cores)
    "full": StudyPreset(
        name="full",
        seeds=[0, 1, 2],
        eval_limits={"chair": 150, "shr": 150},
    ),
}


def check_preset(preset: StudyPreset) -> None:
    """Settings no stage can run with, found before anything is built or trained."""
    # a combination (ha_dpo+vcd) is refused here, naming its parts' choices, when it is not one
    models = {name: split_variant(name)[0] for name in preset.variants}
    unknown = {name for name, model in models.items() if model not in VARIANTS}
    if unknown:
        raise TetherError(
            f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)} or a combination "
            "<trained variant>+<decoding strategy> (ha_dpo+vcd)"
        )
    if preset.noise_schedule not in SCHEDULES:
        raise TetherError(f"noise_schedule '{preset.noise_schedule}' unknown; choose from {list(SCHEDULES)}")
    if preset.reward_pairs not in REWARD_PAIRS:
        raise TetherError(f"reward_pairs '{preset.reward_pairs}' unknown; choose from {list(REWARD_PAIRS)}")
    _check_recipe(preset.recipe)
    needs_pref = sorted(name for name, model in models.items() if model in PREFERENCE_VARIANTS)
    if needs_pref and not world_settings(preset).get("n_pref"):
        raise TetherError(f"variants {needs_pref} need the world's preference split: set world n_pref > 0")


RECIPE_OPTIONS = ("existence_repeats", "grounding_in_sft")  # BaselineRecipe fields the study's recipe sets


def _check_recipe(recipe: dict) -> None:
    known = [*STAGES, "model", *RECIPE_OPTIONS]
    unknown = set(recipe) - set(known)
    if unknown:
        raise TetherError(f"recipe: unknown keys {sorted(unknown)}; choose from {known}")
    fields = {f.name for f in dataclasses.fields(TinyConfig)} - {"seed"}
    unknown = set(recipe.get("model", {})) - fields
    if unknown:
        raise TetherError(f"recipe.model: unknown fields {sorted(unknown)}; choose from {sorted(fields)}")


def baseline_recipe(preset: StudyPreset, seed: int, progress: bool = False):
    """The baseline recipe with the preset's stage steps and architecture overrides."""
    recipe = BaselineRecipe(seed=seed, progress_bar=progress)
    for key, value in preset.recipe.items():
        if key == "model":
            recipe.model = dataclasses.replace(recipe.model, **value)
        elif key in STAGES:
            setattr(recipe, key, dataclasses.replace(getattr(recipe, key), steps=value))
        else:  # one of RECIPE_OPTIONS
            setattr(recipe, key, value)
    return recipe


def world_settings(preset: StudyPreset) -> dict:
    """The study world's settings: configs/world/study.yaml's (``STUDY_WORLD``) with the preset's overrides."""
    return {**STUDY_WORLD, **preset.world}
