"""POPE: tether's fast yes/no mode against plain batch-1 generation, same model, same questions, one run.

    python benchmarks/pope_fast_vs_generate.py [--model DIR] [--questions N] [--out runs/bench-pope]

Without --model, builds a small world and trains a tiny LLaVA on its QA for a few hundred steps, so the
model answers "Yes"/"No" (a random model's generations would not be yes/no answers at all). Prints
questions/s and peak RSS of each mode, the answer agreement, and as its last line
``ratio fast/generate questions_per_s: X.XX``.
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from tether.eval.registry import get_benchmark
from tether.eval.runner import run_benchmark
from tether.models import load
from tether.models.decoding import DecodingSettings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_world_model(out: Path) -> tuple[Path, Path]:
    """A small world and a tiny LLaVA trained on its QA (yes/no answers among them)."""
    from tether.models.tiny import TinyConfig
    from tether.study.recipe import BaselineRecipe, StageSettings, train_baseline
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    world = out / "world"
    if not (world / "world.json").is_file():
        build_world(
            load_world_config(
                None, ["image_size=64", "n_train=800", "n_test=200", "n_val=10", "n_unlabeled=10"]
            ),
            world,
        )
    # 64 px in 8-px patches: 64 visual tokens, so the image prefix dominates the prompt as in LLaVA-1.5
    tiny = TinyConfig(
        arch="llava",
        image_size=64,
        patch_size=8,
        vision_hidden=64,
        vision_layers=2,
        vision_heads=4,
        text_hidden=128,
        text_layers=3,
        text_heads=4,
        max_positions=256,
    )
    recipe = BaselineRecipe(
        model=tiny,
        vision=StageSettings(steps=100, learning_rate=2e-3, batch_size=32),
        align=StageSettings(steps=60, learning_rate=2e-3, batch_size=32),
        sft=StageSettings(steps=200, learning_rate=1e-3, batch_size=16),
        progress_bar=False,
    )
    return train_baseline(world, out / "model", recipe), world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: train a tiny world model)")
    parser.add_argument("--pope", help="POPE question file (default: the world's adversarial file)")
    parser.add_argument("--images", help="image root for --pope")
    parser.add_argument("--questions", type=int, default=300, help="number of questions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-pope")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.model:
        model_path, questions, images = Path(args.model), Path(args.pope), Path(args.images)
    else:
        model_path, world = tiny_world_model(out)
        questions, images = world / "bench" / "pope" / "world_pope_adversarial.jsonl", world / "images"
    vlm = load(model_path)
    bench = get_benchmark("pope")
    items = bench.load_items(questions)[: args.questions]
    timings = {}
    for mode, batch_size in (("generate", 1), ("fast", 32)):
        folder = out / f"run-{mode}"
        for stale in (folder / "samples.jsonl", folder / "results.json"):
            stale.unlink(missing_ok=True)
        start = time.perf_counter()
        run_benchmark(
            bench,
            items,
            vlm=vlm,
            images_root=images,
            out_dir=folder,
            mode=mode,
            decoding=DecodingSettings(max_new_tokens=8),
            batch_size=batch_size,
            progress=False,
        )
        timings[mode] = time.perf_counter() - start
        print(f"{mode:<8} {len(items) / timings[mode]:8.1f} questions/s   peak RSS {peak_rss_mb():.0f} MB")
    answers = {
        m: {
            json.loads(line)["id"]: json.loads(line)["answer"]
            for line in (out / f"run-{m}" / "samples.jsonl").read_text().splitlines()
        }
        for m in ("generate", "fast")
    }
    from tether.eval.pope import parse_pope_answer

    agree = sum(
        parse_pope_answer(answers["generate"][i.id]) == parse_pope_answer(answers["fast"][i.id])
        for i in items
    )
    metrics = {m: json.loads((out / f"run-{m}" / "results.json").read_text())["metrics"] for m in answers}
    print(
        f"agreement {agree}/{len(items)} = {agree / len(items):.4f}   accuracy generate "
        f"{metrics['generate']['accuracy']:.4f} fast {metrics['fast']['accuracy']:.4f}"
    )
    print(f"ratio fast/generate questions_per_s: {timings['generate'] / timings['fast']:.2f}")


if __name__ == "__main__":
    main()
