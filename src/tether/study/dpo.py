"""HA-DPO on the baseline: yes/no answer pairs from the baseline's own answers on the preference split, with
HA-DPO's auxiliary SFT loss on true descriptions of the preference images; with or without NoiseBoost on the
chosen branch."""

from __future__ import annotations

import logging
import random

from tether.core.io import read_jsonl, write_json, write_jsonl
from tether.data.answer_pairs import AnswerPairSettings, build_answer_pairs, load_yes_no_questions
from tether.methods.dpo import DPOConfig, DPOData, DPOSettings, train_dpo
from tether.methods.settings import ModelSettings
from tether.models import load
from tether.world.show import load_scenes
from tether.world.texts import DETAIL_PROMPT, description

logger = logging.getLogger(__name__)


def answer_pairs(ctx) -> str:
    """HA-DPO's yes/no pairs: the baseline's wrong answers to the preference split's questions, balanced
    with correct ones (``tether.data.answer_pairs``)."""
    baseline = ctx.stage_model("sft")
    questions = ctx.pref_questions
    settings = AnswerPairSettings(select=ctx.preset.answer_pairs_select, seed=ctx.seed)

    def fn(folder):
        path = folder / "pairs.jsonl"
        counts = build_answer_pairs(
            load(baseline),
            load_yes_no_questions(questions),
            ctx.world / "images",
            path,
            settings,
            progress=ctx.progress,
        )
        write_json(folder / "counts.json", counts)
        return str(path)

    return ctx.stages.run("answer_pairs", [baseline, questions, settings], fn)


def pref_descriptions(ctx) -> str:
    """True detailed descriptions of the preference split's images (the world's generator, 2 per image)."""

    def fn(folder):
        rng = random.Random(f"{ctx.seed}:pref_descriptions")
        records = [
            {
                "image": scene.image,
                "prompt": DETAIL_PROMPT,
                "response": description(rng, scene, ctx.grid_size),
            }
            for scene in load_scenes(ctx.world, "pref")
            for _ in range(2)
        ]
        path = folder / "descriptions.jsonl"
        write_jsonl(path, records)
        return str(path)

    return ctx.stages.run("pref_descriptions", [ctx.world / "scenes" / "pref.jsonl"], fn)


def dpo(ctx, name: str, start_model: str, noise: bool) -> str:
    # HA-DPO's yes/no answer pairs. Its description pairs (``rlhf.description_pairs``, the reward model's
    # data) are left out: they raised CHAIR_i and cost a DPO step more. HA-DPO's auxiliary SFT loss runs on
    # the preference images' true descriptions (what its corrected descriptions stand for): yes/no DPO alone
    # lengthened descriptions and raised CHAIR_i, and the baseline's own training descriptions as the anchor
    # did not lower it (docs/pairs.md; the numbers: docs/results/study-code-notes.md)
    pairs = answer_pairs(ctx)
    if not read_jsonl(pairs):
        logger.warning("%s: no hallucinations to pair; the model is the starting model", name)
        return start_model
    noiseboost = ctx.noiseboost(noise)
    anchor = pref_descriptions(ctx) if ctx.preset.dpo_sft_weight else None

    config = DPOConfig(
        model=ModelSettings(path=start_model, freeze_vision=True, freeze_projector=False, freeze_llm=False),
        data=DPOData(train=[pairs], images=str(ctx.world / "images"), sft_train=[anchor] if anchor else []),
        train=ctx.train(ctx.stages.folder(name), ctx.preset.dpo_steps, ctx.preset.dpo_learning_rate, 16),
        # chosen-only noise (the paper's) needs the two-sequence path
        dpo=DPOSettings(
            beta=ctx.preset.dpo_beta,
            sft_weight=ctx.preset.dpo_sft_weight,
            sft_target="data",
            shared_prefix=not noise,
        ),
        noiseboost=noiseboost,
    )
    return ctx.stages.run(name, [config], lambda folder: str(train_dpo(config)))


def ha_dpo(ctx) -> str:
    return dpo(ctx, "ha_dpo", ctx.stage_model("sft"), noise=False)


def noiseboost_dpo(ctx) -> str:
    return dpo(ctx, "noiseboost_dpo", ctx.stage_model("sft"), noise=True)


VARIANTS = {"ha_dpo": ha_dpo, "noiseboost_dpo": noiseboost_dpo}
PREFERENCE_VARIANTS = set(VARIANTS)  # their pairs come from the world's preference split
