"""What every variant group builds on: one seed's ``Context`` (preset, world, the baseline recipe's folder,
the stage cache) with the pieces the groups share: training settings, the recipe's text stages (SFT) from any
model, with or without NoiseBoost, rule-written negatives and the scenes' fact sentences."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tether.core.config import from_dict
from tether.data.negatives import write_negatives
from tether.methods.settings import ModelSettings, TrainSettings
from tether.methods.sft import SFTConfig, SFTData, train_sft
from tether.study.data import world_negatives
from tether.study.recipe import BaselineRecipe
from tether.study.stages import Stages
from tether.world.show import load_scenes
from tether.world.texts import fact_sentences

if TYPE_CHECKING:  # the preset imports the variant registry, which imports this module
    from tether.study.preset import StudyPreset


@dataclass
class Context:
    """One seed's run: its preset, world, baseline and stage cache, and the pieces every variant group uses."""

    preset: StudyPreset
    seed: int
    world: Path
    baseline_dir: Path
    recipe: BaselineRecipe
    stages: Stages
    progress: bool

    def train(self, folder: Path, steps: int, learning_rate: float, batch_size: int):
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
    def pref_questions(self) -> Path:
        """The preference split's yes/no questions (answer pairs, PPO prompts)."""
        return self.world / "text" / "pref_questions.jsonl"

    @property
    def grid_size(self) -> int:
        return json.loads((self.world / "world.json").read_text())["config"]["grid_size"]

    def stage_model(self, stage: str) -> str:
        return str(self.baseline_dir / stage / "model")

    def noiseboost(self, noise: bool) -> dict | None:
        if not noise:
            return None
        settings = {"scale": self.preset.noise_scale, "relative": True}
        if self.preset.noise_schedule != "constant":  # constant runs keep the fingerprints they had
            settings.update(schedule=self.preset.noise_schedule, final_scale=0.0)
        return settings

    def sft(
        self, name: str, start_model: str, noise: bool, data: Path | None = None, stage: str = "sft"
    ) -> str:
        """One of the recipe's text stages (``ground``, ``qa`` or ``sft``) from ``start_model``, with or
        without noise."""
        settings = getattr(self.recipe, stage)
        data = data or self.baseline_dir / "data" / f"{stage}.jsonl"
        config = SFTConfig(
            model=ModelSettings(
                path=start_model, freeze_vision=True, freeze_projector=False, freeze_llm=False
            ),
            data=SFTData(train=[str(data)], images=str(self.world / "images")),
            train=self.train(
                self.stages.folder(name), settings.steps, settings.learning_rate, settings.batch_size
            ),
            noiseboost=self.noiseboost(noise),
            normalize=settings.normalize,
        )
        return self.stages.run(name, [config], lambda folder: str(train_sft(config)))

    def negatives(self, split: str = "train") -> str:
        """Rule-written hallucinated rewrites of ``split``'s captions (train: HACL's data; test: the gap's)."""
        if split == "train":
            captions = self.baseline_dir / "data" / "align.jsonl"
        else:
            captions = self.world / "text" / f"{split}_captions.jsonl"

        def fn(folder):
            path = folder / "negatives.jsonl"
            write_negatives(path, world_negatives(captions, self.seed))
            return str(path)

        return self.stages.run("negatives" if split == "train" else f"negatives_{split}", [captions], fn)

    def facts(self, split: str) -> dict[str, list[str]]:
        return {s.image: fact_sentences(s, self.grid_size) for s in load_scenes(self.world, split)}
