"""SFT step cost: tether's collator (length-split sub-batches, cached image inputs) vs one padded batch that
re-processes its images every step (what HF/TRL collators do), on the same model, records and batches.

    PYTHONPATH=src python benchmarks/sft_step.py [--hidden 128] [--layers 3] [--batch 16] [--threads 1]

The records mix one-word answers with long descriptions, as instruction data (and the study's SFT stage)
do; both sides see identical batches in identical order, and the script checks that their losses agree.
Prints ms per step (collate + forward + backward; no optimizer update, so both sides see the same weights)
for both over the last pass (every image seen once before), the process's peak RSS, and as its last line
`ratio tether/padded step_time: X.XX` (below 1: tether is faster).

A measured run: docs/results/notes-from-code.md.
"""

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from tether.data.sft import SFTRecord
from tether.methods.run_record import peak_rss_mb
from tether.methods.settings import ModelSettings
from tether.methods.sft import SFTCollator, SFTModule
from tether.methods.tuning import configure_trainable
from tether.models import load
from tether.models.tiny import build_tiny_checkpoint
from tether.study.recipe import BaselineRecipe

COLOURS = ["red", "blue", "green", "yellow", "white", "purple", "orange", "pink"]
SHAPES = ["square", "circle", "triangle", "star", "heart", "cross"]
WORDS = COLOURS + SHAPES + "a there is the in left right top bottom of above below yes no sits".split()


def make_records(folder: Path, n_images: int, n_records: int, seed: int) -> list[SFTRecord]:
    rng = random.Random(seed)
    for i in range(n_images):
        Image.new("RGB", (96, 96), rng.choice(COLOURS)).save(folder / f"{i}.png")
    records = []
    for _ in range(n_records):
        image = f"{rng.randrange(n_images)}.png"
        if rng.random() < 0.6:  # existence and attribute questions: one-word answers
            records.append(SFTRecord(image, f"is there a {rng.choice(SHAPES)} ?", rng.choice(["yes", "no"])))
        else:  # detailed descriptions: three to five sentences
            sentences = [
                f"there is a {rng.choice(COLOURS)} {rng.choice(SHAPES)} in the {rng.choice(['top', 'bottom'])} "
                f"{rng.choice(['left', 'right'])}"
                for _ in range(rng.randint(3, 5))
            ]
            records.append(SFTRecord(image, "describe the image in detail .", " . ".join(sentences) + " ."))
    return records


def run(vlm, collator, records, batch: int, steps: int) -> tuple[list[float], list[float]]:
    module = SFTModule(vlm)
    optimizer = torch.optim.AdamW([p for p in vlm.model.parameters() if p.requires_grad], lr=1e-4)
    times, losses = [], []
    for step in range(steps):
        start = time.perf_counter()
        out = module(**collator(records[step * batch : (step + 1) * batch]))
        out["loss"].backward()
        optimizer.zero_grad(set_to_none=True)  # no update: both sides must see the same weights
        times.append(time.perf_counter() - start)
        losses.append(out["loss"].item())
    return times, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--epochs", type=int, default=2, help="passes over the same records (the cache pays from the second)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # the study recipe's model, LLM size from the command line
    config = dataclasses.replace(BaselineRecipe().model, text_hidden=args.hidden, text_layers=args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vlm = load(build_tiny_checkpoint(config, tmp / "model", WORDS))
        configure_trainable(vlm, ModelSettings(freeze_vision=True, freeze_projector=False, freeze_llm=False))
        (tmp / "images").mkdir()
        records = make_records(
            tmp / "images", n_images=args.steps * args.batch // 2, n_records=args.steps * args.batch, seed=0
        )
        sides = {
            "padded": lambda: SFTCollator(vlm, tmp / "images", split_by_length=False),
            "tether": lambda: SFTCollator(vlm, tmp / "images", split_by_length=True),
        }
        results = {name: ([], []) for name in sides}
        for name, make in sides.items():
            vlm.image_cache.entries.clear()
            vlm.image_cache.bytes = 0
            if name == "padded":  # the peer processes every image every step
                vlm.image_cache.max_bytes = 0
            else:
                vlm.image_cache.max_bytes = 512 * 2**20
            collator = make()
            for _ in range(args.epochs):
                times, losses = run(vlm, collator, records, args.batch, args.steps)
                results[name][0].extend(times)
                results[name][1].extend(losses)
    padded_loss, tether_loss = results["padded"][1], results["tether"][1]
    worst = max(abs(a - b) for a, b in zip(padded_loss, tether_loss))
    assert worst < 1e-4, f"losses differ by {worst}"
    last_epoch = slice(-args.steps, None)  # the steady state: every image seen once before
    padded_ms, tether_ms = (1000 * statistics.median(results[k][0][last_epoch]) for k in ("padded", "tether"))
    print(
        f"tiny LLaVA hidden {args.hidden} x {args.layers} layers, batch {args.batch}, {args.threads} thread(s)"
    )
    print(f"losses agree to {worst:.1e} over {len(padded_loss)} steps")
    print(f"padded batch, images processed each step  {padded_ms:7.1f} ms/step")
    print(f"tether: length split + image cache         {tether_ms:7.1f} ms/step")
    print(f"peak RSS (process, both sides) {peak_rss_mb():.0f} MB")
    print(f"ratio tether/padded step_time: {tether_ms / padded_ms:.2f}")


if __name__ == "__main__":
    main()
