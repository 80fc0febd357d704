"""The cost of each training-free decoding strategy against greedy: same model, same items, one process.

    python benchmarks/decoding_cost.py [--model DIR] [--images N] [--max-new-tokens N] [--min-seconds S]

Without --model, builds a tiny random-init LLaVA (64 visual tokens, as the image prefix dominates a
LLaVA-1.5 prompt). Generation runs with stopping disabled, so every row generates exactly
--max-new-tokens tokens on every side; generated tokens/s counts them. Fast mode answers 4 yes/no questions
per image (questions/s). Rounds alternate the sides (greedy, vcd, icd, m3id, pai), each side timed for at least
--min-seconds per round (3 rounds: >= 10 s per side); min and median over rounds are printed, then each
strategy's cost ratio against greedy (median time per token, per question; the issue's goal: VCD and ICD
<= 2.2x per token, fast VCD <= 2.2x) and, last, the peak memory.
"""

import argparse
import resource
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from tether.decoding.dispatch import fast_margins, generate, resolve
from tether.models import load
from tether.models.decoding import DecodingSettings

SIDES = ("greedy", "vcd", "icd", "m3id", "pai")
QUESTIONS = ["is there a red square ?", "is there a blue circle ?", "is the triangle left ?", "is it green ?"]
WORDS = "red blue green square circle triangle left right above below is there a the it ? yes no".split()
WORDS += "you are confused object detector . describe image".split()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_model(out: Path) -> Path:
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    config = TinyConfig(arch="llava", image_size=64, patch_size=8, vision_hidden=64, vision_layers=2,
                        vision_heads=4, text_hidden=256, text_layers=4, text_heads=4, max_positions=512)  # fmt: skip
    return build_tiny_checkpoint(config, out, WORDS)


def timed(work, side: str, min_seconds: float) -> tuple[float, int]:
    """Run ``work(side)`` (returning a count) until ``min_seconds`` have passed; (seconds, total count)."""
    start, count = time.perf_counter(), 0
    while True:
        count += work(side)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a tiny random-init LLaVA)")
    parser.add_argument("--images", type=int, default=4, help="images per batch")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=3.4, help="timed work per side and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-decoding")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vlm = load(args.model or tiny_model(Path(args.out) / "model"))
    vlm.stop_token_ids = []  # every row generates max_new_tokens tokens: the same work on every side
    colours = ["red", "blue", "green", "white"]
    images = [Image.new("RGB", (64, 64), colours[i % 4]) for i in range(args.images)]
    prompts = ["describe the image ."] * len(images)
    questions = [(i, q) for i in range(len(images)) for q in QUESTIONS]
    settings = {
        side: resolve(DecodingSettings(max_new_tokens=args.max_new_tokens, strategy=side)) for side in SIDES
    }

    def generation(side):
        generate(vlm, images, prompts, settings[side])
        return len(images) * args.max_new_tokens

    def fast(side):
        fast_margins(vlm, images, questions, settings[side])
        return len(questions)

    rates = {(kind, side): [] for kind in ("generate", "fast") for side in SIDES}
    for side in SIDES:  # warm-up: first calls pay for lazy initialisation, not decoding
        generation(side), fast(side)
    for _ in range(args.rounds):
        for kind, work in (("generate", generation), ("fast", fast)):
            for side in SIDES:
                seconds, count = timed(work, side, args.min_seconds)
                rates[kind, side].append(count / seconds)
    for (kind, side), values in rates.items():
        unit = "tokens/s" if kind == "generate" else "questions/s"
        print(
            f"{kind:<8} {side:<6} {unit:<11} min {min(values):8.1f}  median {statistics.median(values):8.1f}"
        )
    for kind, what in (("generate", "per token"), ("fast", "per question")):
        greedy = statistics.median(rates[kind, "greedy"])
        for side in SIDES[1:]:
            ratio = greedy / statistics.median(rates[kind, side])
            print(f"ratio {kind} {side}/greedy cost {what}: {ratio:.2f}")
    print(f"peak RSS {peak_rss_mb():.0f} MB (the whole process, every side)")


if __name__ == "__main__":
    main()
