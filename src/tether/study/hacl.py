"""HACL (Hallucination-Augmented Contrastive Learning) in the recipe's stage 1: the alignment stage with the
contrastive term against rule-written hallucinated captions, then the recipe's own later text stages."""

from __future__ import annotations

from tether.methods.hacl import HACLConfig, HACLData, HACLSettings, Stage1ModelSettings, train_hacl


def hacl_align(ctx) -> str:
    negatives = ctx.negatives()
    settings = ctx.recipe.align
    start = ctx.stage_model("vision")

    config = HACLConfig(
        model=Stage1ModelSettings(path=start, freeze_vision=True, freeze_projector=False, freeze_llm=False),
        data=HACLData(
            train=[str(ctx.baseline_dir / "data" / "align.jsonl")],
            negatives=[negatives],
            images=str(ctx.world / "images"),
        ),
        train=ctx.train(
            ctx.stages.folder("hacl_align"), settings.steps, settings.learning_rate, settings.batch_size
        ),
        hacl=HACLSettings(weight=ctx.preset.hacl_weight),
    )
    return ctx.stages.run("hacl_align", [config], lambda folder: str(train_hacl(config)))


def hacl_qa(ctx) -> str:
    start = hacl_align(ctx)
    if ctx.recipe.ground.steps:  # the recipe's grounding curriculum follows stage 1 here too
        start = ctx.sft("hacl_ground", start, noise=False, stage="ground")
    return ctx.sft("hacl_qa", start, noise=False, stage="qa")


def hacl(ctx) -> str:
    return ctx.sft("hacl_sft", hacl_qa(ctx), noise=False)


VARIANTS = {"hacl": hacl}
