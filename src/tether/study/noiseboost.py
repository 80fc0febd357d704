"""NoiseBoost on the instruction-tuning stage: the recipe's SFT, from the baseline's qa model, with noise on
the visual tokens."""

from __future__ import annotations


def noiseboost_sft(ctx) -> str:
    # NoiseBoost (and the SSL comparison) act on the instruction-tuning stage (sft), from the baseline's qa
    # model: the qa stage is a curriculum step of the tiny recipe, shared by the variants it does not change
    return ctx.sft("noiseboost_sft", ctx.stage_model("qa"), noise=True)


VARIANTS = {"noiseboost_sft": noiseboost_sft}
