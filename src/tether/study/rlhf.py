"""Fact-RLHF: a reward model with facts (the scenes' fact sentences) on pairs of the baseline's descriptions
against their corrected versions (or on rule-written pairs), then PPO from the baseline against it, with the
yes/no symbolic bonus on the preference split's existence questions."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from tether.core.io import read_jsonl, write_json, write_jsonl
from tether.data.pairs import PairSettings, build_pairs
from tether.methods.ppo import PPOConfig, PPOData, PPOSettings, train_ppo
from tether.methods.reward import RewardConfig, RewardData, RewardSettings, train_reward
from tether.methods.settings import LoraSettings, ModelSettings
from tether.study.data import reward_pairs, rule_reward_pairs, world_negatives
from tether.world.pairs import WorldPairJudge
from tether.world.texts import DETAIL_PROMPT

# reward model and policy both adapt through LoRA; the reference is the policy with adapters off
RLHF_LORA = {"r": 8, "alpha": 16, "dropout": 0.0}


def description_pairs(ctx, split: str = "train") -> str:
    """HA-DPO pairs from the baseline's descriptions of ``split`` images (val: held-out reward pairs)."""
    baseline = ctx.stage_model("sft")
    scenes = read_jsonl(ctx.world / "scenes" / f"{split}.jsonl")
    count = ctx.preset.pair_images if split == "train" else ctx.preset.reward_eval_images
    rng = random.Random(ctx.seed)
    chosen = rng.sample(scenes, min(count, len(scenes)))
    settings = PairSettings(seed=ctx.seed, backend=ctx.preset.pair_backend)

    def fn(folder):
        judge = WorldPairJudge(ctx.world, split, seed=ctx.seed)
        path = folder / "pairs.jsonl"
        counts = build_pairs(
            baseline,  # loaded with the settings' backend
            [(s["image_id"], s["image"]) for s in chosen],
            ctx.world / "images",
            path,
            judge,
            judge.correct,
            settings,
            judge_name=judge.name,
            progress=ctx.progress,
        )
        write_json(folder / "counts.json", counts)
        return str(path)

    name = "pairs" if split == "train" else f"pairs_{split}"
    return ctx.stages.run(name, [baseline, settings, [s["image_id"] for s in chosen]], fn)


def reward(ctx, name: str, use_facts: bool) -> str | None:
    """A reward model on train pairs (None without pairs), its accuracy measured on the val pairs."""
    rule = ctx.preset.reward_pairs == "rule"
    pairs, held_out = (
        rule_pairs(ctx) if rule else description_pairs(ctx, "train"),
        description_pairs(ctx, "val"),
    )
    if not read_jsonl(pairs):
        return None
    baseline = ctx.stage_model("sft")
    folder = ctx.stages.folder(name)
    train, evaluation = (
        Path(pairs) if rule else folder / "reward_pairs.jsonl",
        folder / "held_out_pairs.jsonl",
    )
    config = RewardConfig(
        model=ModelSettings(
            path=baseline,
            freeze_vision=True,
            freeze_projector=True,
            lora=LoraSettings(**RLHF_LORA) if ctx.preset.reward_lora else None,
        ),
        data=RewardData(train=[str(train)], eval=[str(evaluation)], images=str(ctx.world / "images")),
        train=ctx.train(folder, ctx.preset.reward_steps, ctx.preset.reward_learning_rate, 16),
        reward=RewardSettings(use_facts=use_facts),
    )

    def fn(folder):
        if not rule:
            reward_pairs(pairs, ctx.facts("train"), train)
        reward_pairs(held_out, ctx.facts("val"), evaluation)
        data = dataclasses.replace(config.data, eval=config.data.eval if read_jsonl(evaluation) else [])
        return str(train_reward(dataclasses.replace(config, data=data)))

    # the config names the pairs files the stage writes; the pairs they are made from join the key
    return ctx.stages.run(name, [config, Path(pairs), Path(held_out)], fn)


def rule_pairs(ctx) -> str:
    """Every training description of the SFT data against its rule-written rewrite, with the facts."""
    sft_data = ctx.baseline_dir / "data" / "sft.jsonl"

    def fn(folder):
        descriptions = folder / "descriptions.jsonl"
        write_jsonl(descriptions, [r for r in read_jsonl(sft_data) if r["prompt"] == DETAIL_PROMPT])
        negatives = world_negatives(descriptions, ctx.seed)
        return str(rule_reward_pairs(negatives, ctx.facts("train"), folder / "reward_pairs.jsonl"))

    return ctx.stages.run("rule_reward_pairs", [sft_data, ctx.seed], fn)


def fact_rlhf(ctx) -> str:
    baseline = ctx.stage_model("sft")
    reward_model = reward(ctx, "reward", use_facts=True)
    if reward_model is None:
        return baseline

    full = not ctx.preset.ppo_lora  # the whole LLM of the policy and of the value model trains
    data = ctx.stages.folder("ppo") / "prompts.jsonl"  # written by the stage from the preference split
    config = PPOConfig(
        model=ModelSettings(
            path=baseline,
            freeze_vision=True,
            freeze_projector=True,
            lora=None if full else LoraSettings(**RLHF_LORA),
        ),
        data=PPOData(train=[str(data)], images=str(ctx.world / "images")),
        train=ctx.train(ctx.stages.folder("ppo"), ctx.preset.ppo_steps, ctx.preset.ppo_learning_rate, 16),
        ppo=PPOSettings(
            reward_model=reward_model,
            value_lora=None if full else LoraSettings(),
            rollout_batch_size=16,
            mini_batch_size=8,
            max_new_tokens=48,
            kl_coef=ctx.preset.ppo_kl_coef,
            length_bonus=ctx.preset.ppo_length_bonus,
            no_eos_penalty=-1.0,
            correct_bonus=1.0,
        ),
    )

    def ppo_fn(folder):
        # prompts from the preference split (images beyond the instruction data, as LLaVA-RLHF's): its
        # yes/no questions carry the answer for the symbolic bonus; the training images would give the
        # bonus nothing to correct (the baseline answers nearly all of them right;
        # docs/results/study-code-notes.md)
        questions = read_jsonl(ctx.pref_questions)
        facts = ctx.facts("pref")
        rng = random.Random(ctx.seed)
        prompts = [
            {"image": q["image"], "prompt": q["text"], "answer": q["label"], "facts": facts[q["image"]]}
            for q in rng.sample(questions, min(256, len(questions)))
        ]
        prompts += [
            {"image": img, "prompt": "Describe this image in detail.", "facts": f}
            for img, f in rng.sample(sorted(facts.items()), min(256, len(facts)))
        ]
        rng.shuffle(prompts)
        write_jsonl(data, prompts)
        return str(train_ppo(config))

    return ctx.stages.run("ppo", [config, ctx.pref_questions], ppo_fn)


VARIANTS = {"fact_rlhf": fact_rlhf}
PREFERENCE_VARIANTS = set(VARIANTS)  # PPO's prompts come from the preference split
