"""`tether study`: the four papers' claims, reproduced in the synthetic world, end to end.

For each seed: build the world → train the baseline recipe → apply every method → evaluate every model on
every benchmark with identical settings → one report. Each step is a stage cached under the output folder
by a fingerprint of its settings and inputs, so a rerun skips what is done and an interrupted study
resumes. A preset with ``shipped_baseline`` takes that baseline (``tether.study_baseline``) instead of training
it when the run's world, recipe, seed and variants match it.

Variants (each a complete model evaluated alone):

- ``baseline``: the recipe of ``tether.world.baseline`` (vision → align → sft);
- ``hacl``: HACL in stage 1 (align with the contrastive term and rule-written hallucinated captions), then
  the same SFT;
- ``noiseboost_sft``: the same SFT with NoiseBoost noise on the visual tokens;
- ``ha_dpo``: HA-DPO on the baseline, with pairs from the baseline's own descriptions, judged and
  corrected against the scene graphs (``tether.data.pairs`` + ``tether.world.pairs``);
- ``noiseboost_dpo``: the same DPO with noise on the chosen branch;
- ``fact_rlhf``: a reward model with facts (the scene's fact sentences) trained on the same pairs, then PPO
  from the baseline against it, with the yes/no symbolic bonus on existence questions;
- ``combo``: the HACL model + HA-DPO with NoiseBoost on the chosen branch (HACL, NoiseBoost and HA-DPO
  together; it reuses the ``hacl`` model rather than training a third SFT, which kept the full preset
  over its 30-minute budget);
- ``sft_half``: the same SFT on the records of a random half of the training images (the 50%-label model);
- ``noiseboost_ssl``: semi-supervised NoiseBoost: ``sft_half`` as the frozen teacher pseudo-labels the other
  half of the training images and the world's unlabeled split (confidence-filtered), and a noised student
  trains from the align model on labeled + pseudo-labeled records, same steps.

Beside the benchmarks, analysis stages measure what the papers claim about mechanisms (``study_analysis``):
the modality gap of the stage-1 and final models (baseline vs HACL), the attention share on visual tokens
(baseline vs NoiseBoost SFT), and the held-out accuracy of the reward model with and without facts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.io import read_jsonl, write_json, write_jsonl

logger = logging.getLogger(__name__)

VARIANTS = (
    "baseline",
    "hacl",
    "noiseboost_sft",
    "ha_dpo",
    "noiseboost_dpo",
    "fact_rlhf",
    "combo",
    "sft_half",
    "noiseboost_ssl",
)
BENCHMARKS = ("pope_random", "pope_popular", "pope_adversarial", "chair", "mmhal", "shr")
# the world of configs/world/study.yaml: 96 px, so one grid cell is one 32-px patch of the tiny tower, and
# pairs that co-occur 95% of the time in training scenes
STUDY_WORLD = {"image_size": 96, "cooccurrence_prob": 0.95, "n_pref": 500}
# the variants whose data come from the world's preference split (answer pairs, PPO prompts)
PREFERENCE_VARIANTS = {"ha_dpo", "noiseboost_dpo", "combo", "fact_rlhf"}
REWARD_PAIRS = ("descriptions", "rule")
# reward model and policy both adapt through LoRA; the reference is the policy with adapters off
RLHF_LORA = {"r": 8, "alpha": 16, "dropout": 0.0}


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
    # a baseline shipped with tether (tether/baselines/<name>, tether.study_baseline), taken instead of
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
            "pope_random": 400,  # enough for the biased-baseline check; the claims read adversarial
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


class Stages:
    """Runs named stages once: a stage whose fingerprint matches its ``stage.json`` is skipped."""

    def __init__(self, root: Path):
        self.root = root
        self.timings: dict[str, dict] = {}

    def run(self, name: str, fingerprint_parts, fn):
        folder = self.root / name
        marker = folder / "stage.json"
        from tether.core.fingerprints import fingerprint as stage_fingerprint
        from tether.methods.run_record import peak_rss_mb, read_marker, start_stage

        fingerprint = stage_fingerprint(*fingerprint_parts)

        done = read_marker(marker)
        if done.get("fingerprint") == fingerprint and "result" in done:
            self.timings[name] = done.get("timing", {})
            return done["result"]

        logger.info("stage %s", name)
        start = time.perf_counter()
        start_stage(folder, fingerprint)
        result = fn(folder)
        timing = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}
        self.timings[name] = timing
        write_json(marker, {"fingerprint": fingerprint, "result": result, "timing": timing})
        return result


def check_preset(preset: StudyPreset) -> None:
    """Settings no stage can run with, found before anything is built or trained."""
    from tether.methods.noise import SCHEDULES

    unknown = set(preset.variants) - set(VARIANTS)
    if unknown:
        raise TetherError(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    if preset.noise_schedule not in SCHEDULES:
        raise TetherError(f"noise_schedule '{preset.noise_schedule}' unknown; choose from {list(SCHEDULES)}")
    if preset.reward_pairs not in REWARD_PAIRS:
        raise TetherError(f"reward_pairs '{preset.reward_pairs}' unknown; choose from {list(REWARD_PAIRS)}")
    _check_recipe(preset.recipe)
    needs_pref = sorted(set(preset.variants) & PREFERENCE_VARIANTS)
    if needs_pref and not _world_settings(preset).get("n_pref"):
        raise TetherError(f"variants {needs_pref} need the world's preference split: set world n_pref > 0")


RECIPE_OPTIONS = ("existence_repeats", "grounding_in_sft")  # BaselineRecipe fields the study's recipe sets


def _check_recipe(recipe: dict) -> None:
    from tether.models.tiny import TinyConfig
    from tether.world.baseline import STAGES

    known = [*STAGES, "model", *RECIPE_OPTIONS]
    unknown = set(recipe) - set(known)
    if unknown:
        raise TetherError(f"recipe: unknown keys {sorted(unknown)}; choose from {known}")
    fields = {f.name for f in dataclasses.fields(TinyConfig)} - {"seed"}
    unknown = set(recipe.get("model", {})) - fields
    if unknown:
        raise TetherError(f"recipe.model: unknown fields {sorted(unknown)}; choose from {sorted(fields)}")


def run_study(preset: StudyPreset, out_dir, progress: bool = True) -> Path:
    """Run every seed and variant of ``preset`` under ``out_dir``; returns the path of report.md."""
    import torch

    from tether.core.provenance import environment
    from tether.report import write_report

    check_preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "preset.json", dataclasses.asdict(preset))
    write_json(out_dir / "environment.json", environment())  # library versions, platform, CPU, time
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    for seed in preset.seeds:
        results[seed] = _run_seed(preset, seed, out_dir / f"seed{seed}", progress)
        write_json(out_dir / "metrics.json", {str(s): r for s, r in results.items()})
    return write_report(out_dir)


def baseline_recipe(preset: StudyPreset, seed: int, progress: bool = False):
    """The baseline recipe with the preset's stage steps and architecture overrides."""
    from tether.world.baseline import STAGES, BaselineRecipe

    recipe = BaselineRecipe(seed=seed, progress_bar=progress)
    for key, value in preset.recipe.items():
        if key == "model":
            recipe.model = dataclasses.replace(recipe.model, **value)
        elif key in STAGES:
            setattr(recipe, key, dataclasses.replace(getattr(recipe, key), steps=value))
        else:  # one of RECIPE_OPTIONS
            setattr(recipe, key, value)
    return recipe


def _world_settings(preset: StudyPreset) -> dict:
    """The study world's settings: configs/world/study.yaml's (``STUDY_WORLD``) with the preset's overrides."""
    return {**STUDY_WORLD, **preset.world}


def _run_seed(preset: StudyPreset, seed: int, seed_dir: Path, progress: bool) -> dict:
    from tether.world.baseline import train_baseline
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    stages = Stages(seed_dir)
    settings = {**_world_settings(preset), "seed": seed}
    world_config = load_world_config(None, [f"{k}={json.dumps(v)}" for k, v in settings.items()])
    world = seed_dir / "world"
    _refuse_moved(seed_dir, world)

    def build(folder):
        build_world(world_config, world, overwrite=True)
        return str(world)

    stages.run("world_build", [dataclasses.asdict(world_config)], build)

    recipe = baseline_recipe(preset, seed, progress)
    baseline_dir = seed_dir / "baseline"
    baseline = _shipped_baseline(preset, seed, world_config, world, baseline_dir, recipe)
    baseline = baseline or str(train_baseline(world, baseline_dir, recipe))
    # the recipe's own stages record their training time; a rerun that skips them still reports it
    runs = [json.loads(p.read_text()) for p in sorted(baseline_dir.glob("*/run.json"))]
    stages.timings["baseline"] = {"seconds": sum(r.get("wall_seconds") or 0 for r in runs)}
    if not runs:  # the shipped baseline: trained once by `tether study --make-baseline`, not here
        stages.timings["baseline"]["shipped"] = preset.shipped_baseline
    models = {"baseline": baseline}
    ctx = _Context(preset, seed, world, baseline_dir, recipe, stages, progress)
    for variant in preset.variants:
        if variant != "baseline":
            models[variant] = getattr(ctx, variant)()
    metrics = {}
    for variant, model in models.items():
        metrics[variant] = stages.run(
            f"eval/{variant}",
            [model, preset.eval_limits, _model_stamp(model)],
            lambda folder, model=model: _evaluate(model, world, folder, preset, progress),
        )
    for variant, extra in ctx.analyses(models).items():
        metrics[variant].update(extra)
    write_json(seed_dir / "timings.json", stages.timings)
    return metrics


def _shipped_baseline(preset, seed, world_config, world, baseline_dir, recipe) -> str | None:
    """The shipped baseline's model installed under ``baseline_dir`` when it fits this run, else None."""
    from tether.study_baseline import install_shipped, why_not_shipped

    if not preset.shipped_baseline:
        return None
    why = why_not_shipped(preset, seed, world_config, recipe)
    if why:
        logger.warning("shipped baseline '%s' not used (%s): training the baseline", preset.shipped_baseline, why)
        return None
    logger.info("baseline: the shipped baseline '%s'", preset.shipped_baseline)
    return str(install_shipped(preset, world, baseline_dir, recipe))


def _refuse_moved(seed_dir: Path, world: Path) -> None:
    """Stage fingerprints and results hold the paths the stages were made under. Reached by another path
    (a moved folder, another working directory), every stage would look changed, and rerunning it would
    delete what it had trained: refuse instead."""
    from tether.methods.run_record import read_marker

    made = read_marker(seed_dir / "world_build" / "stage.json").get("result")
    if made and made != str(world):
        raise TetherError(
            f"{seed_dir}: its stages were made as {Path(made).parent}, and a rerun under another path would "
            "retrain them and delete what they trained; pass --out exactly as that run did (same path, same "
            "working directory), or a fresh --out"
        )


def _model_stamp(model: str) -> str:
    marker = Path(model).parent / "stage.json"
    return marker.read_text() if marker.is_file() else model


def _evaluate(model: str, world: Path, folder: Path, preset: StudyPreset, progress: bool) -> dict:
    from tether.models import load
    from tether.world.evaluate import evaluate_world
    from tether.world.judge import WorldRuleJudge

    vlm = load(model)
    judge = WorldRuleJudge(world)
    metrics = {}
    for name in BENCHMARKS:
        metrics.update(
            {
                f"{name}/{k}": v
                for k, v in evaluate_world(
                    world,
                    folder,
                    vlm=vlm,
                    names=[name],
                    limit=preset.eval_limits.get(name),
                    progress=progress,
                    judge=judge,
                )[name].items()
                if isinstance(v, int | float)
            }
        )
    return metrics


@dataclass
class _Context:
    preset: StudyPreset
    seed: int
    world: Path
    baseline_dir: Path
    recipe: object
    stages: Stages
    progress: bool

    # ---- shared pieces ------------------------------------------------------------------------------

    def _train(self, folder: Path, steps: int, learning_rate: float, batch_size: int):
        from tether.core.config import from_dict
        from tether.methods.settings import TrainSettings

        return from_dict(
            TrainSettings,
            {
                "output_dir": str(folder),
                "max_steps": steps,
                "learning_rate": learning_rate,
                "per_device_train_batch_size": batch_size,
                "warmup_steps": 0.05,
                "logging_steps": max(1, steps // 20),
                "save_steps": max(steps, 1),
                "save_total_limit": 1,
                "seed": self.seed,
                "progress_bar": self.progress,
            },
        )

    @property
    def _pref_questions(self) -> Path:
        """The preference split's yes/no questions (answer pairs, PPO prompts)."""
        return self.world / "text" / "pref_questions.jsonl"

    @property
    def _grid_size(self) -> int:
        return json.loads((self.world / "world.json").read_text())["config"]["grid_size"]

    def _stage_model(self, stage: str) -> str:
        return str(self.baseline_dir / stage / "model")

    def _noiseboost(self, noise: bool) -> dict | None:
        if not noise:
            return None
        settings = {"scale": self.preset.noise_scale, "relative": True}
        if self.preset.noise_schedule != "constant":  # constant runs keep the fingerprints they had
            settings.update(schedule=self.preset.noise_schedule, final_scale=0.0)
        return settings

    def _sft(
        self, name: str, start_model: str, noise: bool, data: Path | None = None, stage: str = "sft"
    ) -> str:
        """One of the recipe's text stages (``ground``, ``qa`` or ``sft``) from ``start_model``, with or
        without noise."""
        from tether.methods.settings import ModelSettings
        from tether.methods.sft import SFTConfig, SFTData, train_sft

        settings = getattr(self.recipe, stage)
        data = data or self.baseline_dir / "data" / f"{stage}.jsonl"
        noiseboost = self._noiseboost(noise)

        def fn(folder):
            config = SFTConfig(
                model=ModelSettings(
                    path=start_model, freeze_vision=True, freeze_projector=False, freeze_llm=False
                ),
                data=SFTData(train=[str(data)], images=str(self.world / "images")),
                train=self._train(folder, settings.steps, settings.learning_rate, settings.batch_size),
                noiseboost=noiseboost,
                normalize=settings.normalize,
            )
            return str(train_sft(config))

        return self.stages.run(
            name, [start_model, _model_stamp(start_model), dataclasses.asdict(settings), noiseboost, data], fn
        )

    def _negatives(self, split: str = "train") -> str:
        """Rule-written hallucinated rewrites of ``split``'s captions (train: HACL's data; test: the gap's)."""
        from tether.data.negatives import write_negatives
        from tether.study_analysis import world_negatives

        if split == "train":
            captions = self.baseline_dir / "data" / "align.jsonl"
        else:
            captions = self.world / "text" / f"{split}_captions.jsonl"

        def fn(folder):
            path = folder / "negatives.jsonl"
            write_negatives(path, world_negatives(captions, self.seed))
            return str(path)

        return self.stages.run("negatives" if split == "train" else f"negatives_{split}", [captions], fn)

    def _hacl_align(self) -> str:
        from tether.methods.hacl import HACLConfig, HACLData, HACLSettings, Stage1ModelSettings, train_hacl

        negatives = self._negatives()
        settings = self.recipe.align
        start = self._stage_model("vision")

        def fn(folder):
            config = HACLConfig(
                model=Stage1ModelSettings(
                    path=start, freeze_vision=True, freeze_projector=False, freeze_llm=False
                ),
                data=HACLData(
                    train=[str(self.baseline_dir / "data" / "align.jsonl")],
                    negatives=[negatives],
                    images=str(self.world / "images"),
                ),
                train=self._train(folder, settings.steps, settings.learning_rate, settings.batch_size),
                hacl=HACLSettings(weight=self.preset.hacl_weight),
            )
            return str(train_hacl(config))

        return self.stages.run(
            "hacl_align",
            [
                start,
                _model_stamp(start),
                dataclasses.asdict(settings),
                self.preset.hacl_weight,
                Path(negatives),
            ],
            fn,
        )

    def _pairs(self, split: str = "train") -> str:
        """HA-DPO pairs from the baseline's descriptions of ``split`` images (val: held-out reward pairs)."""
        from tether.data.pairs import PairSettings, build_pairs
        from tether.world.pairs import WorldPairJudge

        baseline = self._stage_model("sft")
        scenes = read_jsonl(self.world / "scenes" / f"{split}.jsonl")
        count = self.preset.pair_images if split == "train" else self.preset.reward_eval_images
        rng = random.Random(self.seed)
        chosen = rng.sample(scenes, min(count, len(scenes)))

        def fn(folder):
            judge = WorldPairJudge(self.world, split, seed=self.seed)
            path = folder / "pairs.jsonl"
            counts = build_pairs(
                baseline,  # loaded with the settings' backend
                [(s["image_id"], s["image"]) for s in chosen],
                self.world / "images",
                path,
                judge,
                judge.correct,
                PairSettings(seed=self.seed, backend=self.preset.pair_backend),
                judge_name=judge.name,
                progress=self.progress,
            )
            write_json(folder / "counts.json", counts)
            return str(path)

        name = "pairs" if split == "train" else f"pairs_{split}"
        key = [baseline, _model_stamp(baseline), count]
        if self.preset.pair_backend != "hf":  # other samples; hf keeps the key earlier runs cached under
            key.append(self.preset.pair_backend)
        return self.stages.run(name, key, fn)

    def _answer_pairs(self) -> str:
        """HA-DPO's yes/no pairs: the baseline's wrong answers to the preference split's questions, balanced
        with correct ones (``tether.data.answer_pairs``)."""
        from tether.data.answer_pairs import AnswerPairSettings, build_answer_pairs, load_yes_no_questions
        from tether.models import load

        baseline = self._stage_model("sft")
        questions = self._pref_questions
        settings = AnswerPairSettings(select=self.preset.answer_pairs_select, seed=self.seed)

        def fn(folder):
            path = folder / "pairs.jsonl"
            counts = build_answer_pairs(
                load(baseline),
                load_yes_no_questions(questions),
                self.world / "images",
                path,
                settings,
                progress=self.progress,
            )
            write_json(folder / "counts.json", counts)
            return str(path)

        key = [baseline, _model_stamp(baseline), questions, dataclasses.asdict(settings)]
        return self.stages.run("answer_pairs", key, fn)

    def _pref_descriptions(self) -> str:
        """True detailed descriptions of the preference split's images (the world's generator, 2 per image)."""
        from tether.world.show import load_scenes
        from tether.world.texts import DETAIL_PROMPT, description

        def fn(folder):
            rng = random.Random(f"{self.seed}:pref_descriptions")
            records = [
                {
                    "image": scene.image,
                    "prompt": DETAIL_PROMPT,
                    "response": description(rng, scene, self._grid_size),
                }
                for scene in load_scenes(self.world, "pref")
                for _ in range(2)
            ]
            path = folder / "descriptions.jsonl"
            write_jsonl(path, records)
            return str(path)

        return self.stages.run("pref_descriptions", [self.world / "scenes" / "pref.jsonl"], fn)

    def _dpo(self, name: str, start_model: str, noise: bool) -> str:
        from tether.methods.dpo import DPOConfig, DPOData, DPOSettings, train_dpo
        from tether.methods.settings import ModelSettings

        # HA-DPO's yes/no answer pairs. Its description pairs (``_pairs``, the reward model's data) are left
        # out: measured on seed 0, adding them raised CHAIR_i by 12 points, and they triple a DPO step's cost.
        # HA-DPO's auxiliary SFT loss runs on the preference images' true descriptions (what its corrected
        # descriptions stand for): yes/no DPO alone made descriptions 4x longer (CHAIR_i +12-21 points on each
        # of 3 seeds); anchored on the baseline's own training descriptions they kept their length but CHAIR_i
        # did not fall; on the preference images' descriptions it fell on each seed (docs/pairs.md)
        pairs = self._answer_pairs()
        if not read_jsonl(pairs):
            logger.warning("%s: no hallucinations to pair; the model is the starting model", name)
            return start_model
        noiseboost = self._noiseboost(noise)
        anchor = self._pref_descriptions() if self.preset.dpo_sft_weight else None

        def fn(folder):
            config = DPOConfig(
                model=ModelSettings(
                    path=start_model, freeze_vision=True, freeze_projector=False, freeze_llm=False
                ),
                data=DPOData(
                    train=[pairs],
                    images=str(self.world / "images"),
                    sft_train=[anchor] if anchor else [],
                ),
                train=self._train(folder, self.preset.dpo_steps, self.preset.dpo_learning_rate, 16),
                # chosen-only noise (the paper's) needs the two-sequence path
                dpo=DPOSettings(
                    beta=self.preset.dpo_beta,
                    sft_weight=self.preset.dpo_sft_weight,
                    sft_target="data",
                    shared_prefix=not noise,
                ),
                noiseboost=noiseboost,
            )
            return str(train_dpo(config))

        return self.stages.run(
            name,
            [
                start_model,
                _model_stamp(start_model),
                Path(pairs),
                noiseboost,
                self.preset.dpo_steps,
                self.preset.dpo_beta,
                self.preset.dpo_learning_rate,
                self.preset.dpo_sft_weight,
                anchor and Path(anchor),
            ],
            fn,
        )

    # ---- the variants ------------------------------------------------------------------------------

    def _hacl_qa(self) -> str:
        start = self._hacl_align()
        if self.recipe.ground.steps:  # the recipe's grounding curriculum follows stage 1 here too
            start = self._sft("hacl_ground", start, noise=False, stage="ground")
        return self._sft("hacl_qa", start, noise=False, stage="qa")

    def hacl(self) -> str:
        return self._sft("hacl_sft", self._hacl_qa(), noise=False)

    # NoiseBoost and the SSL comparison act on the instruction-tuning stage (sft), from the baseline's
    # qa model: the qa stage is a curriculum step of the tiny recipe, shared by the variants it does not change
    def noiseboost_sft(self) -> str:
        return self._sft("noiseboost_sft", self._stage_model("qa"), noise=True)

    def ha_dpo(self) -> str:
        return self._dpo("ha_dpo", self._stage_model("sft"), noise=False)

    def noiseboost_dpo(self) -> str:
        return self._dpo("noiseboost_dpo", self._stage_model("sft"), noise=True)

    def combo(self) -> str:
        return self._dpo("combo_dpo", self.hacl(), noise=True)

    def _facts(self, split: str) -> dict[str, list[str]]:
        from tether.world.show import load_scenes
        from tether.world.texts import fact_sentences

        return {s.image: fact_sentences(s, self._grid_size) for s in load_scenes(self.world, split)}

    def _reward(self, name: str, use_facts: bool) -> str | None:
        """A reward model on train pairs (None without pairs), its accuracy measured on the val pairs."""
        from tether.methods.reward import RewardConfig, RewardData, RewardSettings, train_reward
        from tether.methods.settings import LoraSettings, ModelSettings
        from tether.study_analysis import reward_pairs

        rule = self.preset.reward_pairs == "rule"
        pairs, held_out = self._rule_reward_pairs() if rule else self._pairs("train"), self._pairs("val")
        if not read_jsonl(pairs):
            return None
        baseline = self._stage_model("sft")

        def fn(folder):
            train = (
                pairs if rule else reward_pairs(pairs, self._facts("train"), folder / "reward_pairs.jsonl")
            )
            evaluation = reward_pairs(held_out, self._facts("val"), folder / "held_out_pairs.jsonl")
            config = RewardConfig(
                model=ModelSettings(
                    path=baseline,
                    freeze_vision=True,
                    freeze_projector=True,
                    lora=LoraSettings(**RLHF_LORA) if self.preset.reward_lora else None,
                ),
                data=RewardData(
                    train=[str(train)],
                    eval=[str(evaluation)] if read_jsonl(evaluation) else [],
                    images=str(self.world / "images"),
                ),
                train=self._train(folder, self.preset.reward_steps, self.preset.reward_learning_rate, 16),
                reward=RewardSettings(use_facts=use_facts),
            )
            return str(train_reward(config))

        key = [
            baseline,
            _model_stamp(baseline),
            Path(pairs),
            Path(held_out),
            self.preset.reward_steps,
            use_facts,
        ]
        changed = self._changed_settings("reward_pairs", "reward_lora", "reward_learning_rate")
        return self.stages.run(name, key + changed, fn)

    def _changed_settings(self, *names: str) -> list[dict]:
        """A fingerprint's tail: ``[{setting: value}]`` for the preset settings among ``names`` that are off
        their default, ``[]`` when none is. Only these join the fingerprint, so the stages of runs made
        before a setting existed stay valid."""
        defaults = StudyPreset()
        changed = {
            n: getattr(self.preset, n) for n in names if getattr(self.preset, n) != getattr(defaults, n)
        }
        return [changed] if changed else []

    def _rule_reward_pairs(self) -> str:
        """Every training description of the SFT data against its rule-written rewrite, with the facts."""
        from tether.study_analysis import rule_reward_pairs, world_negatives
        from tether.world.texts import DETAIL_PROMPT

        sft_data = self.baseline_dir / "data" / "sft.jsonl"

        def fn(folder):
            descriptions = folder / "descriptions.jsonl"
            write_jsonl(descriptions, [r for r in read_jsonl(sft_data) if r["prompt"] == DETAIL_PROMPT])
            negatives = world_negatives(descriptions, self.seed)
            return str(rule_reward_pairs(negatives, self._facts("train"), folder / "reward_pairs.jsonl"))

        return self.stages.run("rule_reward_pairs", [sft_data, self.seed], fn)

    def fact_rlhf(self) -> str:
        from tether.methods.ppo import PPOConfig, PPOData, PPOSettings, train_ppo
        from tether.methods.settings import LoraSettings, ModelSettings

        baseline = self._stage_model("sft")
        reward_model = self._reward("reward", use_facts=True)
        if reward_model is None:
            return baseline

        def ppo_fn(folder):
            # prompts from the preference split (images beyond the instruction data, as LLaVA-RLHF's): its
            # yes/no questions carry the answer for the symbolic bonus; the training images would give the
            # bonus nothing to correct (measured: the baseline answers 94% of their questions right)
            questions = read_jsonl(self._pref_questions)
            facts = self._facts("pref")
            rng = random.Random(self.seed)
            prompts = [
                {"image": q["image"], "prompt": q["text"], "answer": q["label"], "facts": facts[q["image"]]}
                for q in rng.sample(questions, min(256, len(questions)))
            ]
            prompts += [
                {"image": img, "prompt": "Describe this image in detail.", "facts": f}
                for img, f in rng.sample(sorted(facts.items()), min(256, len(facts)))
            ]
            rng.shuffle(prompts)
            data = folder / "prompts.jsonl"
            write_jsonl(data, prompts)
            full = not self.preset.ppo_lora  # the whole LLM of the policy and of the value model trains
            config = PPOConfig(
                model=ModelSettings(
                    path=baseline,
                    freeze_vision=True,
                    freeze_projector=True,
                    lora=None if full else LoraSettings(**RLHF_LORA),
                ),
                data=PPOData(train=[str(data)], images=str(self.world / "images")),
                train=self._train(folder, self.preset.ppo_steps, self.preset.ppo_learning_rate, 16),
                ppo=PPOSettings(
                    reward_model=reward_model,
                    value_lora=None if full else LoraSettings(),
                    rollout_batch_size=16,
                    mini_batch_size=8,
                    max_new_tokens=48,
                    kl_coef=self.preset.ppo_kl_coef,
                    length_bonus=self.preset.ppo_length_bonus,
                    no_eos_penalty=-1.0,
                    correct_bonus=1.0,
                ),
            )
            return str(train_ppo(config))

        key = [
            baseline,
            reward_model,
            _model_stamp(reward_model),
            self.preset.ppo_steps,
            self._pref_questions,
        ]
        changed = self._changed_settings("ppo_lora", "ppo_learning_rate", "ppo_kl_coef", "ppo_length_bonus")
        return self.stages.run("ppo", key + changed, ppo_fn)

    def _half_split(self) -> tuple[list[str], list[str]]:
        """Train images split in two halves (seeded): the labeled half and the half whose labels are dropped."""
        images = sorted(s["image"] for s in read_jsonl(self.world / "scenes" / "train.jsonl"))
        random.Random(f"{self.seed}:half").shuffle(images)
        return sorted(images[: len(images) // 2]), sorted(images[len(images) // 2 :])

    def _half_sft_data(self) -> Path:
        labeled = set(self._half_split()[0])
        records = [r for r in read_jsonl(self.baseline_dir / "data" / "sft.jsonl") if r["image"] in labeled]
        path = self.stages.root / "ssl_data" / "sft_half.jsonl"
        write_jsonl(path, records)  # rewritten every run, byte-identical: stage fingerprints read it
        return path

    def sft_half(self) -> str:
        return self._sft("sft_half", self._stage_model("qa"), noise=False, data=self._half_sft_data())

    def noiseboost_ssl(self) -> str:
        from tether.methods.noise import NoiseSettings
        from tether.methods.settings import ModelSettings
        from tether.methods.ssl import PseudoLabelSettings, SSLConfig, SSLData, train_ssl
        from tether.study_analysis import ssl_unlabeled_items
        from tether.world.vocab import SHAPES

        teacher, labeled = self.sft_half(), self._half_sft_data()
        start = self._stage_model("qa")
        unlabeled = self._half_split()[1] + [
            s["image"] for s in read_jsonl(self.world / "scenes" / "unlabeled.jsonl")
        ]
        unlabeled = random.Random(self.seed).sample(unlabeled, min(self.preset.ssl_images, len(unlabeled)))
        items = self.stages.root / "ssl_data" / "unlabeled.jsonl"
        write_jsonl(items, ssl_unlabeled_items(sorted(unlabeled), SHAPES, self.seed))
        settings = self.recipe.sft
        noiseboost = self._noiseboost(True)

        def fn(folder):
            config = SSLConfig(
                model=ModelSettings(path=start, freeze_vision=True, freeze_projector=False, freeze_llm=False),
                data=SSLData(
                    labeled=[str(labeled)], unlabeled=[str(items)], images=str(self.world / "images")
                ),
                pseudo=PseudoLabelSettings(
                    teacher=teacher, threshold=self.preset.ssl_threshold, batch_size=32, max_new_tokens=64
                ),
                train=self._train(folder, settings.steps, settings.learning_rate, settings.batch_size),
                noiseboost=NoiseSettings(**noiseboost),
                normalize=settings.normalize,
            )
            return str(train_ssl(config))

        return self.stages.run(
            "noiseboost_ssl",
            [
                start,
                _model_stamp(start),
                teacher,
                _model_stamp(teacher),
                labeled,
                items,
                dataclasses.asdict(settings),
                noiseboost,
                self.preset.ssl_threshold,
            ],
            fn,
        )

    # ---- the analyses ------------------------------------------------------------------------------

    def analyses(self, models: dict[str, str]) -> dict[str, dict]:
        """Metrics beside the benchmarks, per variant, for the variants in ``models`` that they compare."""
        from tether.study_analysis import description_words, ppo_metrics

        extra: dict[str, dict] = {}

        def add(found: dict[str, dict]):
            for variant, values in found.items():
                extra.setdefault(variant, {}).update(values)

        for variant in models:
            samples = self.stages.root / "eval" / variant / "chair" / "samples.jsonl"
            if samples.is_file():
                add({variant: {"length/description_words": description_words(samples)}})

        if "hacl" in models:
            add(self._gap_analysis(models))
        if "noiseboost_sft" in models:
            add(self._attention_analysis(models))
        if "fact_rlhf" in models and models["fact_rlhf"] != models["baseline"]:
            accuracy = {}
            for key, name, use_facts in [("facts", "reward", True), ("vanilla", "reward_vanilla", False)]:
                run = json.loads((Path(self._reward(name, use_facts)).parent / "run.json").read_text())
                if run["eval"]["accuracy"] is not None:
                    accuracy[f"reward/accuracy_{key}"] = run["eval"]["accuracy"]
                    accuracy["reward/held_out_pairs"] = run["eval"]["pairs"]
            add({"fact_rlhf": {**accuracy, **ppo_metrics(Path(models["fact_rlhf"]).parent)}})
        if "noiseboost_ssl" in models:
            run = json.loads((Path(models["noiseboost_ssl"]).parent / "run.json").read_text())
            add(
                {
                    "noiseboost_ssl": {
                        "ssl/unlabeled_items": run["unlabeled_items"],
                        "ssl/pseudo_labels_kept": run["pseudo_labels_kept"],
                        "ssl/mean_confidence": run["mean_confidence"],
                    }
                }
            )
        return extra

    def _gap_analysis(self, models: dict[str, str]) -> dict[str, dict]:
        from tether.study_analysis import gap_stage

        negatives = self._negatives("test")
        measured = {
            "align/baseline": self._stage_model("align"),
            "align/hacl": self._hacl_align(),
            "final/baseline": models["baseline"],
            "final/hacl": models["hacl"],
        }
        return self.stages.run(
            "analysis/gap",
            [
                measured,
                [_model_stamp(m) for m in measured.values()],
                Path(negatives),
                self.preset.analysis_images,
            ],
            lambda folder: gap_stage(
                measured, negatives, self.world, folder, images=self.preset.analysis_images, seed=self.seed
            ),
        )

    def _attention_analysis(self, models: dict[str, str]) -> dict[str, dict]:
        from tether.study_analysis import attention_stage

        measured = {v: models[v] for v in ("baseline", "noiseboost_sft")}
        return self.stages.run(
            "analysis/attention",
            [
                measured,
                [_model_stamp(m) for m in measured.values()],
                self.preset.analysis_images,
                self.preset.attention_max_new_tokens,
            ],
            lambda folder: attention_stage(
                measured,
                self.world,
                folder,
                images=self.preset.analysis_images,
                max_new_tokens=self.preset.attention_max_new_tokens,
                seed=self.seed,
            ),
        )
