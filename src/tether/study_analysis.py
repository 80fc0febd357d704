"""The study's measurements beside the benchmarks: modality gap, attention share, reward-model accuracy.

Each function is one cached study stage's work, run on a few held-out test (or val) images of the world, and
returns flat metrics (``{"gap/final/centroid_distance": ...}``) that the study merges into the variants'
benchmark metrics, so the report's mean-over-seeds and paired-difference machinery covers them too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tether.core.io import read_jsonl, write_jsonl

GAP_METRICS = ("centroid_distance", "matched_cosine", "negative_cosine", "probe_accuracy")
ATTENTION_GROUPS = ("correct", "hallucinated", "all")


def world_word_map() -> dict[str, str]:
    """Every one-word name of a world shape (synonyms and plurals) → its canonical shape.

    Two-word names ("plus sign", "hollow circle") cannot be matched word by word: their head word is left
    out when it would be wrong ("sign"), and "hollow circle" counts as a circle (a rare synonym of ring).
    """
    from tether.world.vocab import NAME_TO_SHAPE

    return {words[0]: shape for words, shape in NAME_TO_SHAPE.items() if len(words) == 1}


def attention_items(world: Path, split: str, limit: int, seed: int, prompt: str) -> list:
    """``limit`` scenes of ``split`` (seeded draw) as attention probes with their true shapes."""
    from tether.analysis.attention import AttentionItem
    from tether.core.images import open_image
    from tether.world.show import load_scenes

    scenes = load_scenes(world, split)
    chosen = random.Random(seed).sample(scenes, min(limit, len(scenes)))
    return [AttentionItem(open_image(world / "images", s.image), prompt, sorted(s.shapes())) for s in chosen]


def attention_stage(
    models: dict[str, str], world: Path, folder: Path, *, images: int, max_new_tokens: int, seed: int
) -> dict[str, dict]:
    """Attention share of each model on the same probes; ``{label: metrics}``, plus attention.json/png."""
    from tether.analysis.attention import attention_share_report, plot_attention_shares, word_map_lookup
    from tether.core.io import write_json
    from tether.core.provenance import environment
    from tether.models import load
    from tether.models.decoding import DecodingSettings
    from tether.world.texts import DETAIL_PROMPT

    items = attention_items(world, "test", images, seed, DETAIL_PROMPT)
    lookup = word_map_lookup(world_word_map())
    settings = DecodingSettings(max_new_tokens=max_new_tokens)
    reports = {
        label: attention_share_report(load(path), items, lookup, settings) for label, path in models.items()
    }
    write_json(folder / "attention.json", {"reports": reports, "environment": environment()})
    plot_attention_shares(reports, folder / "attention.png")
    return {label: attention_metrics(report) for label, report in reports.items()}


def attention_metrics(report: dict) -> dict[str, float]:
    """Flat metrics of one attention report: per group, the visual share per layer, its mean, the token count."""
    metrics = {}
    for group in ATTENTION_GROUPS:
        g = report["groups"][group]
        metrics[f"attention/{group}/tokens"] = g["tokens"]
        if g["tokens"]:
            metrics[f"attention/{group}/mean"] = sum(g["visual"]) / len(g["visual"])
            metrics.update({f"attention/{group}/layer{i}": v for i, v in enumerate(g["visual"])})
    return metrics


def gap_stage(
    models: dict[str, str], negatives: str, world: Path, folder: Path, *, images: int, seed: int
) -> dict[str, dict]:
    """Modality gap of each ``{label: model}`` on the same held-out pairs; ``{label: metrics}`` + gap.json/png.

    Labels are ``<stage>/<variant>`` ("align/hacl", "final/baseline"); metrics come back per variant as
    ``gap/<stage>/<metric>``.
    """
    from tether.analysis.gap import analyze_gap

    report = analyze_gap(
        list(models.items()), negatives, world / "images", folder, limit=images, seed=seed, columns=2
    )
    out: dict[str, dict] = {}
    for row in report["models"]:
        stage, variant = row["label"].split("/")
        out.setdefault(variant, {}).update({f"gap/{stage}/{k}": row[k] for k in GAP_METRICS})
    return out


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
    from tether.data.negatives import RuleRewriter, load_caption_records, make_negatives
    from tether.world.vocab import hallucination_vocabulary

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
    from tether.world.texts import DETAIL_PROMPT, EXISTENCE_QUESTIONS, with_article

    rng = random.Random(seed)
    descriptions = [{"image": image, "prompt": DETAIL_PROMPT} for image in images]
    asked = [
        {"image": image, "prompt": EXISTENCE_QUESTIONS[0].format(a_name=with_article(shape))}
        for image in images
        for shape in rng.sample(shapes, min(questions, len(shapes)))
    ]
    # descriptions first: a generation batch lasts as long as its longest answer, so short answers go together
    return descriptions + asked


def description_words(samples_path: Path) -> float:
    """Mean words per answer of a benchmark's ``samples.jsonl`` (CHAIR's: the detailed descriptions)."""
    answers = [r["answer"] for r in read_jsonl(samples_path)]
    return sum(len(a.split()) for a in answers) / max(len(answers), 1)


def ppo_metrics(run_dir: Path) -> dict[str, float]:
    """PPO's first and last logged step (``log.jsonl``): KL, reward, response length.

    The first rollout is generated by the starting policy (LoRA adapters start at zero), so its response
    length is the baseline's on the same prompts with the same sampling.
    """
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    first, last = log[0], log[-1]
    return {
        "ppo/steps": last["step"],
        "ppo/kl_last": last["kl"],
        "ppo/reward_first": first["reward"],
        "ppo/reward_last": last["reward"],
        "ppo/response_length_first": first["response_length"],
        "ppo/response_length_last": last["response_length"],
    }
