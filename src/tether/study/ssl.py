"""Semi-supervised NoiseBoost: ``sft_half`` (the recipe's SFT on half the training images' records) as the
frozen teacher pseudo-labels the other half and the world's unlabeled split; a noised student trains from the
baseline's qa model on labeled + confident pseudo-labeled records."""

from __future__ import annotations

import random
from pathlib import Path

from tether.core.io import read_jsonl, write_jsonl
from tether.methods.noise import NoiseSettings
from tether.methods.settings import ModelSettings
from tether.methods.ssl import PseudoLabelSettings, SSLConfig, SSLData, train_ssl
from tether.study.data import ssl_unlabeled_items
from tether.world.vocab import SHAPES


def half_split(ctx) -> tuple[list[str], list[str]]:
    """Train images split in two halves (seeded): the labeled half and the half whose labels are dropped."""
    images = sorted(s["image"] for s in read_jsonl(ctx.world / "scenes" / "train.jsonl"))
    random.Random(f"{ctx.seed}:half").shuffle(images)
    return sorted(images[: len(images) // 2]), sorted(images[len(images) // 2 :])


def half_sft_data(ctx) -> Path:
    labeled = set(half_split(ctx)[0])
    records = [r for r in read_jsonl(ctx.baseline_dir / "data" / "sft.jsonl") if r["image"] in labeled]
    path = ctx.stages.root / "ssl_data" / "sft_half.jsonl"
    write_jsonl(path, records)  # rewritten every run, byte-identical: stage fingerprints read it
    return path


def sft_half(ctx) -> str:
    return ctx.sft("sft_half", ctx.stage_model("qa"), noise=False, data=half_sft_data(ctx))


def noiseboost_ssl(ctx) -> str:
    teacher, labeled = sft_half(ctx), half_sft_data(ctx)
    start = ctx.stage_model("qa")
    unlabeled = half_split(ctx)[1] + [
        s["image"] for s in read_jsonl(ctx.world / "scenes" / "unlabeled.jsonl")
    ]
    unlabeled = random.Random(ctx.seed).sample(unlabeled, min(ctx.preset.ssl_images, len(unlabeled)))
    items = ctx.stages.root / "ssl_data" / "unlabeled.jsonl"
    write_jsonl(items, ssl_unlabeled_items(sorted(unlabeled), SHAPES, ctx.seed))
    settings = ctx.recipe.sft
    noiseboost = ctx.noiseboost(True)

    config = SSLConfig(
        model=ModelSettings(path=start, freeze_vision=True, freeze_projector=False, freeze_llm=False),
        data=SSLData(labeled=[str(labeled)], unlabeled=[str(items)], images=str(ctx.world / "images")),
        pseudo=PseudoLabelSettings(
            teacher=teacher, threshold=ctx.preset.ssl_threshold, batch_size=32, max_new_tokens=64
        ),
        train=ctx.train(
            ctx.stages.folder("noiseboost_ssl"), settings.steps, settings.learning_rate, settings.batch_size
        ),
        noiseboost=NoiseSettings(**noiseboost),
        normalize=settings.normalize,
    )
    return ctx.stages.run("noiseboost_ssl", [config], lambda folder: str(train_ssl(config)))


VARIANTS = {"sft_half": sft_half, "noiseboost_ssl": noiseboost_ssl}
