"""The study's data files made from the world: rule-written negatives, reward-model pairs with their facts,
and the items the SSL teacher is asked about."""

from __future__ import annotations

import random
from pathlib import Path

from tether.core.io import read_jsonl, write_jsonl
from tether.data.negatives import RuleRewriter, load_caption_records, make_negatives
from tether.world.texts import DETAIL_PROMPT, EXISTENCE_QUESTIONS, with_article
from tether.world.vocab import hallucination_vocabulary


def reward_pairs(pairs_path, facts: dict[str, list[str]], out_path: Path) -> Path:
    """A study pair file (``tether.data.pairs``) as reward-model pairs with each image's fact sentences."""
    records = [
        {
            "image": p["images"][0],
            "prompt": p["prompt"],
            "chosen": p["chosen"],
            "rejected": p["rejected"],
            "facts": facts[p["images"][0]],
        }
        for p in read_jsonl(pairs_path)
    ]
    write_jsonl(out_path, records)
    return out_path


def world_negatives(captions_path, seed: int) -> list[dict]:
    """Rule-written hallucinated rewrites (``tether.data.negatives`` rows) of a caption or SFT file, over the
    world's vocabulary; captions nothing can be rewritten in are left out."""
    rewriter = RuleRewriter(hallucination_vocabulary())
    return make_negatives(load_caption_records(captions_path), rewriter, seed=seed)


def rule_reward_pairs(negatives: list[dict], facts: dict[str, list[str]], out_path: Path) -> Path:
    """Reward-model pairs from negatives rows: the true caption chosen, its rewrite rejected, with the facts."""
    pairs = [
        {
            "image": r["image"],
            "prompt": r["prompt"],
            "chosen": r["caption"],
            "rejected": r["negative"],
            "facts": facts[r["image"]],
        }
        for r in negatives
    ]
    write_jsonl(out_path, pairs)
    return out_path


def ssl_unlabeled_items(images: list[str], shapes: list[str], seed: int, questions: int = 2) -> list[dict]:
    """What the SSL teacher is asked of each unlabeled image: a detailed description and ``questions``
    existence questions about shapes drawn at random (not from the image's labels: it has none)."""
    rng = random.Random(seed)
    descriptions = [{"image": image, "prompt": DETAIL_PROMPT} for image in images]
    asked = [
        {"image": image, "prompt": EXISTENCE_QUESTIONS[0].format(a_name=with_article(shape))}
        for image in images
        for shape in rng.sample(shapes, min(questions, len(shapes)))
    ]
    # descriptions first: a generation batch lasts as long as its longest answer, so short answers go together
    return descriptions + asked
