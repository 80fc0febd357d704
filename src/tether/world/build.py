"""Write a whole world folder: images, scene graphs, texts, benchmark exports and a dataset card.

The folder layout is the contract with the evaluation harness and the trainers (docs/world.md).
Everything except ``build_info.json`` (library versions, time) is byte-identical for the same config.
"""

import json
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from tether.core.errors import TetherError
from tether.core.io import write_json, write_jsonl
from tether.core.provenance import environment
from tether.world import exports, texts
from tether.world.config import SPLITS, WorldConfig
from tether.world.render import render
from tether.world.scene import Scene, sample_split

WORLD_FORMAT_VERSION = 1
LABELED_SPLITS = ("train", "val", "test")
_OUTPUTS = ("images", "scenes", "text", "bench", "world.json", "README.md", "build_info.json")
# Written first, so a folder left by an interrupted build is still recognised as a world to overwrite.
MARKER = ".tether-world"


def build_world(config: WorldConfig, out, overwrite: bool = False) -> dict:
    """Build the world described by ``config`` into folder ``out``; return the counts written."""
    config.validate()
    out = Path(out)
    _prepare(out, overwrite)
    started = time.perf_counter()

    scenes = {split: sample_split(config, split) for split in SPLITS}
    images = out / "images"
    images.mkdir(parents=True)
    every_scene = [scene for split in SPLITS for scene in scenes[split]]
    # shown on a terminal only (tqdm's disable=None): builds also run inside tests and the study
    for scene in tqdm(every_scene, desc="render", unit="image", disable=None):
        render(scene, config.image_size, config.noise_std).save(images / scene.image)

    for split in LABELED_SPLITS:
        write_jsonl(out / "scenes" / f"{split}.jsonl", [s.to_dict() for s in scenes[split]])
    write_jsonl(
        out / "scenes" / "unlabeled.jsonl",
        [{"image_id": s.image_id, "image": s.image} for s in scenes["unlabeled"]],
    )
    write_jsonl(out / "scenes" / "unlabeled_truth.jsonl", [s.to_dict() for s in scenes["unlabeled"]])

    # a world without a preference split is written as before there was one
    used = [split for split in SPLITS if split != "pref" or config.n_pref]
    counts = {f"{split}_images": len(scenes[split]) for split in used}
    for split in LABELED_SPLITS:
        counts.update(_write_texts(out / "text", split, scenes[split], config))
    counts["lm_corpus_sentences"] = _write_lm_corpus(out / "text" / "lm_corpus.txt", out / "text")

    train_stats = exports.ShapeStats.of(scenes["train"])
    counts.update(_write_benchmarks(out / "bench", scenes["test"], train_stats, config, images))
    if config.n_pref:
        counts["pref_questions"] = _write_pref(out, scenes["pref"], train_stats, config)

    statistics = {split: _split_statistics(scenes[split], config, split) for split in used}
    card = {
        "version": WORLD_FORMAT_VERSION,
        "config": asdict(config),
        "counts": counts,
        "statistics": statistics,
    }
    write_json(out / "world.json", card)
    (out / "README.md").write_text(dataset_card(card), encoding="utf-8")
    seconds = time.perf_counter() - started
    write_json(out / "build_info.json", {"environment": environment(), "build_seconds": round(seconds, 2)})
    counts["build_seconds"] = round(seconds, 2)
    return counts


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TetherError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise TetherError(f"--out {out} is a non-empty folder that holds no world; choose another folder")
        if not overwrite:
            raise TetherError(f"--out {out} already holds a world; pass --overwrite to rebuild it")
        for name in _OUTPUTS:  # only what a build writes: stale images of a larger world must not linger
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a tether world folder: `tether world build --overwrite` may replace it\n")


def _write_texts(folder: Path, split: str, scenes: list[Scene], config: WorldConfig) -> dict:
    captions, descriptions, qa, conversations = [], [], [], []
    grid = config.grid_size
    for scene in scenes:
        rng = random.Random(f"{config.seed}:text:{scene.image_id}")
        ids = {"image_id": scene.image_id, "image": scene.image}
        captions.append({**ids, "caption": texts.caption(rng, scene)})
        for _ in range(config.descriptions_per_image):
            descriptions.append({**ids, "description": texts.description(rng, scene, grid)})
        qa += [{**ids, **pair} for pair in texts.qa_pairs(rng, scene, config.shapes, grid)]
        conversations.append({**ids, "conversations": texts.conversation(rng, scene, config.shapes, grid)})
    files = {"captions": captions, "descriptions": descriptions, "qa": qa, "conversations": conversations}
    for name, records in files.items():
        write_jsonl(folder / f"{split}_{name}.jsonl", records)
    return {f"{split}_{name}": len(records) for name, records in files.items()}


def _write_pref(out: Path, scenes: list[Scene], train: exports.ShapeStats, config: WorldConfig) -> int:
    """The preference split: its scene graphs (the pair judge's ground truth) and yes/no questions about
    its images in POPE's fields (random and adversarial absent shapes), from which answer pairs are mined."""
    write_jsonl(out / "scenes" / "pref.jsonl", [s.to_dict() for s in scenes])
    questions = {}
    for strategy in ("random", "adversarial"):  # the same "yes" questions in both: kept once
        for q in exports.pope_questions(scenes, train, config, strategy):
            questions.setdefault((q["image"], q["text"]), q)
    records = [{**q, "question_id": i + 1} for i, q in enumerate(questions.values())]
    write_jsonl(out / "text" / "pref_questions.jsonl", records)
    return len(records)


def _write_lm_corpus(path: Path, text_folder: Path) -> int:
    """Text-only sentences (train captions and descriptions), one per line: they carry the language prior."""
    sentences = []
    for line in (text_folder / "train_captions.jsonl").read_text(encoding="utf-8").splitlines():
        sentences.append(json.loads(line)["caption"])
    for line in (text_folder / "train_descriptions.jsonl").read_text(encoding="utf-8").splitlines():
        sentences += [s if s.endswith(".") else s + "." for s in json.loads(line)["description"].split(". ")]
    path.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    return len(sentences)


def _write_benchmarks(
    bench: Path, test: list[Scene], train: exports.ShapeStats, config: WorldConfig, images: Path
) -> dict:
    counts = {}
    for strategy in exports.POPE_SPLITS:
        records = exports.pope_questions(test, train, config, strategy)
        write_jsonl(bench / "pope" / f"world_pope_{strategy}.jsonl", records)
        counts[f"pope_{strategy}"] = len(records)

    write_json(bench / "chair" / "gt_objects.json", exports.chair_ground_truth(test, config.shapes))
    (bench / "chair" / "synonyms.txt").write_text(
        exports.chair_synonyms_text(config.shapes), encoding="utf-8"
    )
    write_jsonl(bench / "chair" / "questions.jsonl", exports.chair_questions(test))
    counts["chair_images"] = len(test)

    for subtask, items in exports.mme_items(test, config).items():
        (bench / "mme" / subtask / "images").mkdir(parents=True)
        (bench / "mme" / subtask / "questions_answers_YN").mkdir(parents=True)
        for scene, pairs in items:
            shutil.copyfile(images / scene.image, bench / "mme" / subtask / "images" / scene.image)
            answer_file = bench / "mme" / subtask / "questions_answers_YN" / f"{scene.image_id}.txt"
            answer_file.write_text(exports.mme_answer_file(pairs), encoding="utf-8")
        counts[f"mme_{subtask}_images"] = len(items)

    mmhal = exports.mmhal_items(test, train, config)
    write_json(bench / "mmhal" / "mmhal_world.json", mmhal)
    counts["mmhal_items"] = len(mmhal)

    shr = exports.shr_items(test, config.grid_size)
    write_jsonl(bench / "shr" / "shr_world.jsonl", shr)
    counts["shr_items"] = len(shr)

    amber = exports.amber_files(test, train, config)
    for name, records in amber.items():
        write_json(bench / "amber" / name, records)
    # AMBER's nouns never counted as hallucinations (generic or ambiguous words): none in the world, whose
    # association table lists shape names only; the generative scorer reads the file beside annotations.json
    (bench / "amber" / "safe_words.txt").write_text("", encoding="utf-8")
    counts["amber_generative"] = len(amber["query_generative.json"])
    counts["amber_discriminative"] = len(amber["query_discriminative.json"])
    return counts


def _split_statistics(scenes: list[Scene], config: WorldConfig, split: str) -> dict:
    """What a user needs to see the bias: P(partner | member) per pair, and shape frequencies."""
    stats = exports.ShapeStats.of(scenes)
    pairs = {
        f"{a}+{b}": {
            f"P({b}|{a})": round(stats.conditional(a, b), 4),
            f"P({a}|{b})": round(stats.conditional(b, a), 4),
        }
        for a, b in config.cooccurrence_pairs
    }
    frequency = {s: round(stats.frequency[s] / max(1, stats.n_scenes), 4) for s in config.shapes}
    return {"biased": config.is_biased(split), "cooccurrence": pairs, "shape_frequency": frequency}


def dataset_card(card: dict) -> str:
    """The README.md of a world folder: what is in it, how many, and how biased."""
    config, counts, statistics = card["config"], card["counts"], card["statistics"]
    lines = [
        "# tether synthetic world",
        "",
        f"Format version {card['version']}. Seed {config['seed']}; {config['image_size']} px images; "
        f"{config['min_objects']}-{config['max_objects']} objects per scene on a "
        f"{config['grid_size']}x{config['grid_size']} grid; {len(config['shapes'])} shapes, "
        f"{len(config['colors'])} colours, sizes {', '.join(config['sizes'])}.",
        "",
        "## Bias settings",
        "",
        f"- co-occurring pairs: {', '.join('+'.join(p) for p in config['cooccurrence_pairs'])}; "
        f"P(partner | member) = {config['cooccurrence_prob']} in biased splits",
        f"- shape frequency skew {config['frequency_skew']} (weight 1/(rank+1)^skew, rank = order in `shapes`)",
        f"- test split biased: {config['test_bias']}",
        "",
        "## Measured co-occurrence: P(b | a) / P(a | b) for each pair a+b",
        "",
        "| split | biased | " + " | ".join(f"{a}+{b}" for a, b in config["cooccurrence_pairs"]) + " |",
        "|---|---|" + "---|" * len(config["cooccurrence_pairs"]),
    ]
    for split, stats in statistics.items():
        cells = [" / ".join(f"{v:.2f}" for v in pair.values()) for pair in stats["cooccurrence"].values()]
        lines.append(f"| {split} | {stats['biased']} | " + " | ".join(cells) + " |")
    lines += ["", "## Counts", ""]
    lines += [f"- {name}: {value}" for name, value in counts.items()]
    lines += ["", "Layout and formats: see docs/world.md in the tether repository.", ""]
    return "\n".join(lines)
