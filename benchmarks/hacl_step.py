"""Cost of HACL's contrastive term: one HACL training step vs one plain stage-1 step, same model and batch.

    PYTHONPATH=src python benchmarks/hacl_step.py [--arch llava] [--hidden 256] [--layers 4] [--batch 16]
        [--template plain|chat] [--train-llm]

Both steps train the projector (LLM and vision tower frozen, stage-1 alignment) on the same rows. The plain
step is the caption next-token loss alone (``SFTModule``); the HACL step adds the image representations, one
batched forward of captions + hallucinated captions, the heads and the InfoNCE loss. Under ``--template plain``
(LLaVA's stage-1 format, the default) the image representations come from the L_G forward itself (shared
visual prefix); under ``--template chat`` from a separate batched visual-only forward. Prints steps/s and peak
memory of both and the ratio; the issue asks for the contrastive term to cost well under 2x.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from tether.methods.hacl import HACLCollator, HACLExample, HACLModule
from tether.methods.settings import ModelSettings
from tether.methods.sft import SFTModule
from tether.methods.tuning import configure_trainable
from tether.models import load
from tether.models.tiny import TinyConfig, build_tiny_checkpoint

COLOURS = ["red", "blue", "green", "yellow", "white", "purple", "orange", "pink"]
SHAPES = ["square", "circle", "triangle", "star"]
WORDS = (
    COLOURS + SHAPES + "a an the left right of above below is there and with small large two three".split()
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clock, memory_unit, peak_memory_mb, reset_peak_memory  # noqa: E402


def make_examples(n: int, image_size: int):
    examples, images = [], []
    for i in range(n):
        colour, shape, other = COLOURS[i % 8], SHAPES[i % 4], SHAPES[(i + 1) % 4]
        caption = (
            f"there is a small {colour} {shape} left of a large {COLOURS[(i + 3) % 8]} {other} and two stars"
        )
        negative = caption.replace(f"{colour} {shape}", f"{colour} {SHAPES[(i + 2) % 4]}")
        examples.append(HACLExample(None, negative))
        images.append(Image.new("RGB", (image_size, image_size), colour))
        examples[-1].record = type(
            "R", (), {"image": f"{i}", "prompt": "describe the image", "response": caption}
        )
    return examples, images


class InMemoryCollator(HACLCollator):
    """HACLCollator with images already in memory (the benchmark times model work, not PNG decoding)."""

    def __init__(self, vlm, images, template):
        super().__init__(vlm, None, template=template)
        self.images = images

    def __call__(self, examples):
        import tether.methods.hacl as hacl

        original = hacl.open_image
        hacl.open_image = lambda root, name: self.images[int(name)]
        try:
            return super().__call__(examples)
        finally:
            hacl.open_image = original


def to_device(batch, device):
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device) if torch.is_tensor(batch) else batch


def time_steps(module, optimizer, batch, steps: int, warmup: int) -> tuple[float, float]:
    reset_peak_memory()
    for i in range(warmup + steps):
        if i == warmup:
            start = clock()
        loss = module(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (clock() - start) / steps, peak_memory_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="llava", choices=["llava", "qwen2_vl"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the two steps; report medians")
    parser.add_argument("--train-llm", action="store_true", help="HACL in SFT: LLM trains too")
    parser.add_argument("--template", default="plain", choices=["plain", "chat"], help="L_G rows' format")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TinyConfig(
        arch=args.arch,
        image_size=args.image_size,
        patch_size=args.patch_size,
        text_hidden=args.hidden,
        text_layers=args.layers,
        text_heads=max(2, args.hidden // 64),
        vision_hidden=args.hidden // 2,
        vision_heads=max(2, args.hidden // 128),
    )
    with tempfile.TemporaryDirectory() as tmp:
        vlm = load(build_tiny_checkpoint(config, tmp, WORDS))
    vlm.model.to(device)
    configure_trainable(vlm, ModelSettings(freeze_llm=not args.train_llm))  # stage 1: projector trains
    result = compare_steps(vlm, args.batch, args.image_size, args.steps, args.warmup, args.rounds, args.template)
    print(
        f"device {device}, {args.arch} hidden {args.hidden} x {args.layers} layers, batch {args.batch}, "
        f"{result['visual_tokens']} visual tokens per image, {args.template} template: lm sequence "
        f"{result['sequence_tokens']} tokens; HACL images: {result['hacl_images']}"
    )
    setting = "HACL in SFT (LLM trains)" if args.train_llm else "stage-1 (projector trains)"
    print(f"{setting}; per-round ratios {', '.join(f'{r:.2f}' for r in result['round_ratios'])}")
    for name in ("plain", "hacl"):
        seconds, memory = result[name]["step_s"], result[name]["peak_memory_mb"]
        print(
            f"{name + ' step':10s} {1 / seconds:8.2f} steps/s  {seconds * 1000:8.1f} ms  {memory:8.0f} "
            f"{memory_unit()}"
        )
    print(f"ratio tether/stage1 step_time: {result['ratio_step_time']:.2f}")


def compare_steps(vlm, batch_size, image_size, steps, warmup, rounds, template="plain") -> dict:
    """A HACL step against a plain SFT step on the same rows, trainable parameters as ``vlm`` has them set:
    median step time and peak memory of each, alternating in ``rounds``."""
    device = vlm.model.device
    examples, images = make_examples(batch_size, image_size)
    batch = to_device(InMemoryCollator(vlm, images, template)(examples), device)
    lm_batch = vlm.encode(
        images,
        [e.record.prompt for e in examples],
        [e.record.response for e in examples],
        template=template,
    )
    plain_batch = to_device({"image_batch": lm_batch.as_dict()}, device)
    plain = SFTModule(vlm)
    hacl = HACLModule(vlm)
    optimizers = {
        name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for name, m in (("plain", plain), ("hacl", hacl))
    }
    # alternate the two in rounds so a busy machine slows both alike; medians over rounds
    runs = {"plain": [], "hacl": []}
    for _ in range(rounds):
        runs["plain"].append(time_steps(plain, optimizers["plain"], plain_batch, steps, warmup))
        runs["hacl"].append(time_steps(hacl, optimizers["hacl"], batch, steps, warmup))
    result = {
        name: {
            "step_s": statistics.median(s for s, _ in runs[name]),
            "peak_memory_mb": max(m for _, m in runs[name]),
        }
        for name in runs
    }
    result["round_ratios"] = [h[0] / p[0] for p, h in zip(runs["plain"], runs["hacl"])]
    result["ratio_step_time"] = result["hacl"]["step_s"] / result["plain"]["step_s"]
    result["visual_tokens"] = int(vlm.visual_token_mask(lm_batch.input_ids).sum(1)[0])
    result["sequence_tokens"] = int(lm_batch.input_ids.shape[1])
    result["hacl_images"] = "shared visual prefix" if "packed" in batch else "separate visual-only forward"
    return result


if __name__ == "__main__":
    main()
