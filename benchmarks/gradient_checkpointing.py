"""Peak memory of one SFT training step with and without ``train.gradient_checkpointing``, same model and batch.

    PYTHONPATH=src python benchmarks/gradient_checkpointing.py [--hidden 1024] [--layers 8] [--batch 2]
        [--words 500] [--rounds 3] [--steps 2] [--threads 1]

A random-init LLaVA-shaped model (``--hidden`` wide, ``--layers`` deep, LoRA on the attention projections, so
gradients are small and the memory that differs is the activations) takes forward + backward steps on the
same batch of long answers. Each side runs in its own fresh process, alternating, ``--rounds`` times: on a
CUDA GPU memory is ``torch.cuda.max_memory_allocated`` during the step minus what was allocated before it; on
CPU it is the process's peak RSS minus its RSS before the step (RSS only grows to a new peak when the step
needs more than the process ever held, which the loaded model already sets). The script checks that both
sides compute the same loss, prints min and median step time and step memory per side, and, as its last
lines, the ratios checkpointed/plain (step memory below 1: checkpointing saves memory; step time above 1:
what the recompute costs).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "red blue green square circle triangle left right above below a the is of".split()


def build(folder: Path, hidden: int, layers: int) -> Path:
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    config = TinyConfig(
        text_hidden=hidden, text_layers=layers, text_heads=max(1, hidden // 64), max_positions=4096
    )
    return build_tiny_checkpoint(config, folder, WORDS)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one_side(args) -> dict:
    """``--steps`` steps of one side in this process: their seconds, the step memory (MB), the loss."""
    import torch
    from accelerate.utils import send_to_device
    from PIL import Image

    from tether.data.sft import SFTRecord
    from tether.methods.run_record import peak_rss_mb
    from tether.methods.settings import LoraSettings, ModelSettings
    from tether.methods.sft import SFTCollator, SFTModule
    from tether.methods.trainer import enable_activation_checkpointing
    from tether.methods.tuning import load_for_training

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    settings = ModelSettings(
        path=args.checkpoint, lora=LoraSettings(dropout=0.0), device="cuda" if cuda else "cpu"
    )
    vlm = load_for_training(settings)
    module = SFTModule(vlm).train()
    if args.side == "checkpointed":
        enable_activation_checkpointing(module)
    images = Path(args.checkpoint).parent / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (32, 32), "red").save(images / "red.png")
    answer = " ".join(WORDS[i % len(WORDS)] for i in range(args.words))
    records = [SFTRecord(image="red.png", prompt="describe it .", response=answer)] * args.batch
    batch = SFTCollator(vlm, images, split_by_length=False)(records)
    device = torch.device("cuda" if cuda else "cpu")
    module.to(device)
    batch = send_to_device(batch, device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = rss_mb()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        module.zero_grad(set_to_none=False)  # gradients stay allocated: every step after the first is alike
        loss = module(**batch)["loss"]
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb()
    return {"seconds": seconds, "step_mb": peak - before, "loss": loss.item(), "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="steps per process and round")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--words", type=int, default=500, help="answer length, in words (one token each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--side", choices=["plain", "checkpointed"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child process: one side, one step
        print(json.dumps(one_side(args)))
        return
    results = {"plain": [], "checkpointed": []}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build(Path(tmp) / "model", args.hidden, args.layers)
        for _ in range(args.rounds):
            for side in results:
                command = [sys.executable, __file__, "--side", side, "--checkpoint", str(checkpoint)]
                for name in ("hidden", "layers", "batch", "words", "threads", "steps"):
                    command += [f"--{name}", str(getattr(args, name))]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{side} side failed:\n{done.stderr[-3000:]}")
                out = done.stdout
                results[side].append(json.loads(out.strip().splitlines()[-1]))
    losses = {r["loss"] for side in results.values() for r in side}
    if max(losses) - min(losses) > 1e-4:
        raise SystemExit(f"losses differ between the sides: {sorted(losses)}")
    print(
        f"device {results['plain'][0]['device']}, hidden {args.hidden}, {args.layers} layers, "
        f"batch {args.batch} x ~{args.words} tokens, LoRA, loss {min(losses):.4f} on both sides"
    )
    summary = {}
    for side, runs in results.items():
        seconds = [s for r in runs for s in r["seconds"]]
        memory = [r["step_mb"] for r in runs]
        summary[side] = (statistics.median(seconds), statistics.median(memory))
        print(
            f"{side:>12}: step {min(seconds):.2f} s min / {statistics.median(seconds):.2f} s median, "
            f"step memory {min(memory):.0f} MB min / {statistics.median(memory):.0f} MB median"
        )
    print(f"ratio checkpointed/plain step_time: {summary['checkpointed'][0] / summary['plain'][0]:.2f}")
    print(f"ratio checkpointed/plain step_memory: {summary['checkpointed'][1] / summary['plain'][1]:.2f}")


if __name__ == "__main__":
    main()
