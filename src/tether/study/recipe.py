"""The baseline recipe: LLaVA's training recipe in miniature, on the synthetic world.

Stages (each an ordinary tether training command on files the recipe writes from the world):

0. ``lm``: the language model learns world text (captions and descriptions) — this is what gives it a
   language prior, co-occurrence bias included;
   ``vision``: the vision tower learns to tell shapes and colours (multi-label classification);
1. ``align``: the projector learns to map visual features into the LLM (captioning; the tiny LLM trains too,
   the tower stays frozen);
1b. ``ground`` (off by default): colour, size and position questions about every uniquely-shaped object,
   alone: the tiny LLM otherwise never learns to read colour from the visual tokens (docs/baseline.md);
2. ``qa``: existence questions only ("Is there a star in the image?" — "Yes"/"No"), a curriculum step: the
   tiny LLM learns to find a named object among the visual tokens;
   ``sft``: instruction tuning on all QA kinds and detailed descriptions, each response weighing the same
   (per-sample loss normalization), so one-word answers are not drowned by long descriptions.

Trained from scratch end to end, or with existence questions and descriptions mixed from the start, a tiny
model does not learn to answer; staged like this it answers well where the image is clear and hallucinates
along the co-occurrence bias — the gap every method is measured on (measurements:
docs/results/study-code-notes.md).

Each stage runs through the study's stage cache (``tether.study.stages``): it writes ``<out>/<stage>/model``
and a ``stage.json`` keyed by its whole training config and the key of the stage it starts from; a rerun
skips stages whose key matches.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.config import from_dict
from tether.core.io import read_json, read_jsonl, write_jsonl
from tether.data.sft import CAPTION_PROMPT
from tether.methods.settings import ModelSettings, TrainSettings
from tether.methods.sft import SFTConfig, SFTData, train_sft
from tether.methods.vision import VisionConfig, VisionData, train_vision
from tether.models.tiny import TinyConfig, build_tiny_checkpoint
from tether.study.stages import Stages
from tether.world.scene import Scene
from tether.world.texts import DETAIL_PROMPT, grounding_questions, world_words

logger = logging.getLogger(__name__)

STAGES = ("lm", "vision", "align", "ground", "qa", "sft")


@dataclass
class StageSettings:
    steps: int = 200
    learning_rate: float = 1e-3
    batch_size: int = 32
    warmup: float = 0.05  # fraction of the steps
    normalize: str = "token"  # text stages: loss mean per token or per sample (tether.methods.sft)


@dataclass
class BaselineRecipe:
    seed: int = 0
    model: TinyConfig = field(
        default_factory=lambda: TinyConfig(
            arch="llava",
            image_size=96,
            patch_size=32,
            vision_hidden=96,
            vision_layers=3,
            vision_heads=4,
            text_hidden=128,
            text_layers=3,
            text_heads=4,
            max_positions=256,
        )
    )
    # 0 = skipped (measured: a tiny LLM pretrained on world text no longer learns to read visual tokens;
    # the language prior then comes from the biased captions and descriptions of stages 1-2)
    lm: StageSettings = field(
        default_factory=lambda: StageSettings(steps=0, learning_rate=2e-3, batch_size=32)
    )
    vision: StageSettings = field(
        default_factory=lambda: StageSettings(steps=300, learning_rate=2e-3, batch_size=32)
    )
    align: StageSettings = field(
        default_factory=lambda: StageSettings(steps=600, learning_rate=2e-3, batch_size=32)
    )
    # 0 = skipped (the shipped recipe); the pilots tried 2000 (docs/baseline.md: it teaches colour and size,
    # and existence then no longer comes back in the qa stage as well as without it)
    ground: StageSettings = field(
        default_factory=lambda: StageSettings(steps=0, learning_rate=1e-3, batch_size=16)
    )
    qa: StageSettings = field(
        default_factory=lambda: StageSettings(steps=2000, learning_rate=1e-3, batch_size=16)
    )
    sft: StageSettings = field(
        default_factory=lambda: StageSettings(
            steps=1000, learning_rate=1e-3, batch_size=16, normalize="sample"
        )
    )
    # existence questions appear this many times in the sft stage's data, so instruction tuning keeps what
    # the qa stage taught (once is not enough: docs/results/study-code-notes.md)
    existence_repeats: int = 3
    # the ground stage's questions join the SFT data too, so SFT keeps what that stage taught
    grounding_in_sft: bool = False
    # train the tower in stages 1-2 too (LLaVA freezes it; a tuned tiny tower collapses to a constant)
    tune_tower: bool = False
    progress_bar: bool = True


def prepare_data(
    world_dir, out_dir, existence_repeats: int = 1, grounding_in_sft: bool = False, seed: int = 0
) -> dict[str, Path]:
    """Write the recipe's training files (tether's SFT / label formats) from a world folder."""
    world_dir, out_dir = Path(world_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = world_dir / "text"
    qa = [
        (r["qa_type"], {"image": r["image"], "prompt": r["question"], "response": r["answer"]})
        for r in read_jsonl(text / "train_qa.jsonl")
    ]
    grounding = _grounding_records(world_dir, seed)
    files = {
        "lm": [{"text": line} for line in (text / "lm_corpus.txt").read_text().splitlines() if line.strip()],
        "vision": [
            {"image": s["image"], "labels": [], "regions": scene_regions(s)}
            for s in read_jsonl(world_dir / "scenes" / "train.jsonl")
        ],
        "align": [
            {"image": r["image"], "prompt": CAPTION_PROMPT, "response": r["caption"]}
            for r in read_jsonl(text / "train_captions.jsonl")
        ],
        "ground": grounding,
        "qa": [record for kind, record in qa if kind == "existence"],
        "sft": [record for kind, record in qa for _ in range(existence_repeats if kind == "existence" else 1)]
        + [
            {"image": r["image"], "prompt": DETAIL_PROMPT, "response": r["description"]}
            for r in read_jsonl(text / "train_descriptions.jsonl")
        ]
        + (grounding if grounding_in_sft else []),
    }
    paths = {}
    for name, records in files.items():
        paths[name] = out_dir / f"{name}.jsonl"
        write_jsonl(paths[name], records)
    return paths


def _grounding_records(world_dir: Path, seed: int) -> list[dict]:
    """The ground stage's questions about every training scene (``texts.grounding_questions``)."""
    import random

    grid_size = read_json(world_dir / "world.json")["config"]["grid_size"]
    rng = random.Random(seed)
    return [
        {"image": scene.image, "prompt": q["question"], "response": q["answer"]}
        for record in read_jsonl(world_dir / "scenes" / "train.jsonl")
        for scene in [Scene.from_dict(record)]
        for q in grounding_questions(rng, scene, grid_size)
    ]


def scene_regions(scene: dict) -> list[dict]:
    """Each object's box labelled with its shape, colour and size: what the tower must see, and where."""
    return [{"bbox": o["bbox"], "labels": [o["shape"], o["color"], o["size"]]} for o in scene["objects"]]


def train_baseline(world_dir, out_dir, recipe: BaselineRecipe | None = None) -> Path:
    """Run every stage (skipping finished ones) through the study's stage cache (``tether.study.stages``,
    rooted at ``out_dir``); returns the final model folder."""
    recipe = recipe or BaselineRecipe()
    world_dir, out_dir = Path(world_dir), Path(out_dir)
    data = prepare_data(
        world_dir, out_dir / "data", recipe.existence_repeats, recipe.grounding_in_sft, recipe.seed
    )
    stages = Stages(out_dir)
    model_path = _initial_checkpoint(recipe, stages)
    for stage in STAGES:
        if getattr(recipe, stage).steps:
            model_path = _run_stage(stage, recipe, model_path, data, world_dir, stages)
    return model_path


def _initial_checkpoint(recipe: BaselineRecipe, stages: Stages) -> Path:
    """The random-init model, rebuilt when the architecture or seed changed."""
    model = dataclasses.replace(recipe.model, seed=recipe.seed)

    def build(folder):
        build_tiny_checkpoint(model, folder, world_words())
        return str(folder)

    stages.run("init", [model], build)
    return stages.folder("init")


def stage_config(stage: str, recipe: BaselineRecipe, model_path, data_file, world_dir, folder):
    """The training config of recipe stage ``stage`` (a ``VisionConfig`` or an ``SFTConfig``) from
    ``model_path``: the whole of it is the stage's key (with the model's and data file's own keys)."""
    settings: StageSettings = getattr(recipe, stage)
    train = from_dict(
        TrainSettings,
        {
            "output_dir": str(folder),
            "max_steps": settings.steps,
            "learning_rate": settings.learning_rate,
            "per_device_train_batch_size": settings.batch_size,
            "warmup_steps": settings.warmup,
            "logging_steps": max(1, settings.steps // 20),
            "save_steps": settings.steps,
            "save_total_limit": 1,
            "seed": recipe.seed,
            "progress_bar": recipe.progress_bar,
            "lr_scheduler_type": "cosine",
        },
    )
    # which parts train in each stage (LLaVA's recipe): see the module docstring
    tower_frozen = not recipe.tune_tower
    trainable = {
        "lm": dict(freeze_vision=True, freeze_projector=True, freeze_llm=False),
        "vision": dict(freeze_vision=False, freeze_projector=True, freeze_llm=True),
        # the LLM trains in stage 1 too: a from-scratch tiny LLM cannot caption frozen
        "align": dict(freeze_vision=tower_frozen, freeze_projector=False, freeze_llm=False),
        "ground": dict(freeze_vision=tower_frozen, freeze_projector=False, freeze_llm=False),
        "qa": dict(freeze_vision=tower_frozen, freeze_projector=False, freeze_llm=False),
        "sft": dict(freeze_vision=tower_frozen, freeze_projector=False, freeze_llm=False),
    }[stage]
    model = ModelSettings(path=str(model_path), **trainable)
    images = str(world_dir / "images")
    if stage == "vision":
        data = VisionData(train=[str(data_file)], images=images)
        return VisionConfig(model=model, data=data, train=train, objective="dense")
    data = SFTData(train=[str(data_file)], images=images)
    return SFTConfig(model=model, data=data, train=train, normalize=settings.normalize)


def _run_stage(stage, recipe, model_path, data, world_dir, stages: Stages) -> Path:
    config = stage_config(stage, recipe, model_path, data[stage], world_dir, stages.folder(stage))

    def train(folder):
        logger.info("stage %s: %d steps from %s", stage, config.train.max_steps, model_path)
        return str(train_vision(config) if stage == "vision" else train_sft(config))

    stages.run(stage, [config], train)
    # the folder, not the recorded result (an absolute path): a baseline folder moved whole stays valid
    return stages.folder(stage) / "model"
