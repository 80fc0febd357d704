"""POPE: tether's fast yes/no mode against plain batch-1 generation, same model, same questions, one run.

    python benchmarks/pope_fast_vs_generate.py [--model DIR] [--questions N] [--out runs/bench-pope]

Without --model, builds a small world and trains a tiny LLaVA on its QA for a few hundred steps, so the
model answers "Yes"/"No" (a random model's generations would not be yes/no answers at all). Prints
questions/s and peak RSS of each mode, the answer agreement, and as its last line
``ratio fast/generate questions_per_s: X.XX``.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from tether.eval.registry import get_benchmark
from tether.eval.runner import run_benchmark
from tether.models import load
from tether.models.decoding import DecodingSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clock, memory_unit, peak_memory_mb, reset_peak_memory  # noqa: E402


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
    items = get_benchmark("pope").load_items(questions)[: args.questions]
    result = compare_modes(vlm, items, images, out)
    for mode in ("generate", "fast"):
        print(
            f"{mode:<8} {result[mode]['questions_per_s']:8.1f} questions/s   "
            f"peak {result[mode]['peak_memory_mb']:.0f} {memory_unit()}"
        )
    print(
        f"agreement {result['agree']}/{len(items)} = {result['agreement']:.4f}   accuracy generate "
        f"{result['generate']['accuracy']:.4f} fast {result['fast']['accuracy']:.4f}"
    )
    print(f"ratio fast/generate questions_per_s: {result['ratio_questions_per_s']:.2f}")


def compare_modes(vlm, items, images, out: Path, max_new_tokens: int = 8, fast_batch_size: int = 32) -> dict:
    """POPE ``items`` answered by batch-1 generation and by fast mode: questions/s, peak memory and accuracy
    of each, and how often the two parsed answers agree."""
    from tether.eval.pope import parse_pope_answer

    bench = get_benchmark("pope")
    result = {}
    for mode, batch_size in (("generate", 1), ("fast", fast_batch_size)):
        folder = out / f"run-{mode}"
        for stale in (folder / "samples.jsonl", folder / "results.json"):
            stale.unlink(missing_ok=True)
        reset_peak_memory()
        start = clock()
        run_benchmark(
            bench,
            items,
            vlm=vlm,
            images_root=images,
            out_dir=folder,
            mode=mode,
            decoding=DecodingSettings(max_new_tokens=max_new_tokens),
            batch_size=batch_size,
            progress=False,
        )
        seconds = clock() - start
        samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        result[mode] = {
            "questions_per_s": len(items) / seconds,
            "peak_memory_mb": peak_memory_mb(),
            "accuracy": json.loads((folder / "results.json").read_text())["metrics"]["accuracy"],
            "answers": {s["id"]: parse_pope_answer(s["answer"]) for s in samples},
        }
    agree = sum(result["generate"]["answers"][i.id] == result["fast"]["answers"][i.id] for i in items)
    for mode in ("generate", "fast"):
        del result[mode]["answers"]
    result["agree"], result["agreement"] = agree, agree / len(items)
    result["ratio_questions_per_s"] = result["fast"]["questions_per_s"] / result["generate"]["questions_per_s"]
    return result


if __name__ == "__main__":
    main()
