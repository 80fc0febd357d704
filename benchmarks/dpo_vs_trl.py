"""DPO training throughput and peak memory: tether's shared-prefix DPO vs TRL's DPOTrainer, one run.

Both train the same random-init LLaVA (CLIP tower → MLP projector → Llama) on the same image pairs with the same
hyperparameters (batch size, steps, optimizer, learning rate, dtype (``--dtype``, float32 by default), torch
threads), vision tower frozen. On a CUDA machine both train on the GPU and report its peak memory as well.
Shapes follow LLaVA-1.5's proportions: many image tokens, a ~20-token prompt, ~30-token responses, a 32k vocabulary.

Each trainer runs in its own subprocess (so peak RSS is its own), alternating for ``--rounds`` rounds; each
timed phase counts its fastest round (as timeit does: load from other processes only ever adds time). Warm-up
steps are excluded. tether's time includes its reference pass (computed once before training, after one untimed
warm-up batch, prorated to the timed pairs); TRL computes the reference in every step (for image datasets it
refuses to precompute). Prints pairs/s and peak RSS for both, and as the last line
``ratio tether/trl pairs_per_s: X.XX``.

    PYTHONPATH=src python benchmarks/dpo_vs_trl.py [--lora] [--steps 8] [--batch-size 4]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clock, peak_memory_mb, peak_rss_mb, reset_peak_memory  # noqa: E402

WORDS = "red blue green square circle triangle left right above below".split()


def build_model(out: Path, args) -> None:
    from tether.models import load
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    config = TinyConfig(
        arch="llava",
        image_size=args.image_size,
        patch_size=args.patch_size,
        vision_hidden=128,
        vision_layers=2,
        vision_heads=4,
        text_hidden=args.hidden,
        text_layers=args.layers,
        text_heads=args.hidden // 64,
        max_positions=1024,
    )
    build_tiny_checkpoint(config, out / "small_vocab", WORDS)
    vlm = load(out / "small_vocab")
    vlm.model.resize_token_embeddings(args.vocab)  # a LLaMA-sized vocabulary: the LM head costs what it costs
    vlm.save_pretrained(out / "model")


def build_data(out: Path, n_pairs: int) -> None:
    from PIL import Image

    rng = random.Random(0)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / "pairs.jsonl", "w") as f:
        for i in range(n_pairs):
            Image.new("RGB", (64, 64), WORDS[i % 3]).save(out / "images" / f"{i}.png")
            words = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
            row = {"prompt": words(14), "chosen": words(29), "rejected": words(29), "images": [f"{i}.png"]}
            f.write(json.dumps(row) + "\n")


class StepTimer:
    """A TrainerCallback that times steps after the warm-up ones."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == timer.warmup:
                    timer.start = clock()
                timer.end = clock()

        self.warmup = warmup
        self.start = self.end = None
        self.callback = Callback()

    @property
    def seconds(self) -> float:
        return self.end - self.start


def run_tether(work: Path, args) -> dict:
    from tether.data.preference import load_preference_records
    from tether.methods.dpo import DPOCollator, DPOModule
    from tether.methods.dpo_reference import compute_reference_logprobs
    from tether.methods.settings import LoraSettings, ModelSettings, TrainSettings
    from tether.methods.trainer import run_training
    from tether.methods.tuning import load_for_training

    lora = LoraSettings(r=16, alpha=32, dropout=0.0) if args.lora else None
    model = ModelSettings(path=str(work / "model"), dtype=args.dtype, freeze_vision=True, lora=lora)
    vlm = load_for_training(model)
    pairs = load_preference_records(work / "pairs.jsonl")
    collator = DPOCollator(vlm, work / "images")
    compute_reference_logprobs(vlm, pairs[: args.batch_size], collator, args.batch_size)  # warm-up, untimed
    start = clock()
    ref_chosen, ref_rejected = compute_reference_logprobs(vlm, pairs, collator, args.batch_size)
    reference_seconds = clock() - start
    items = [
        {"index": i, "pair": p, "ref_chosen": c, "ref_rejected": r}
        for i, (p, c, r) in enumerate(zip(pairs, ref_chosen.tolist(), ref_rejected.tolist()))
    ]
    timer = StepTimer(args.warmup)
    settings = TrainSettings(**common_training(work / "tether_run", args), resume=False)
    run_training(DPOModule(vlm, beta=0.1), collator, items, settings, callbacks=[timer.callback])
    timed_pairs = args.steps * args.batch_size
    seconds = timer.seconds + reference_seconds * timed_pairs / len(pairs)
    return {"pairs_per_s": timed_pairs / seconds, "train_s": timer.seconds, "reference_s": reference_seconds}


def run_trl(work: Path, args) -> dict:
    from datasets import Dataset
    from PIL import Image
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from trl import DPOConfig, DPOTrainer

    from tether.models import load

    vlm = load(work / "model")  # tokenizer, image processor and chat template, as tether reads them
    import torch

    model = LlavaForConditionalGeneration.from_pretrained(work / "model", dtype=getattr(torch, args.dtype))
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    config = model.config
    processor = LlavaProcessor(
        image_processor=vlm.image_processor,
        tokenizer=vlm.tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1,
        chat_template=vlm.chat_template,
    )
    del vlm
    eos = processor.tokenizer.eos_token
    rows = []
    for line in open(work / "pairs.jsonl"):
        r = json.loads(line)
        image = Image.open(work / "images" / r["images"][0]).convert("RGB")
        # same token sequences as tether's: templated prompt, responses ending in EOS
        rows.append(
            {
                "images": [image],
                "prompt": processor.apply_chat_template(
                    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["prompt"]}]}],
                    add_generation_prompt=True,
                ),
                "chosen": f"{r['chosen']} {eos}",
                "rejected": f"{r['rejected']} {eos}",
            }
        )
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        target = r"^(?!.*(vision_tower|visual)).*\.(q_proj|k_proj|v_proj|o_proj)$"
        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=target)
    common = common_training(work / "trl_run", args)
    common.pop("progress_bar")
    # bf16=False: TRL's default turns on bf16 autocast, which tether's run does not use; both train in --dtype
    trl_args = DPOConfig(
        beta=0.1,
        loss_type=["sigmoid"],
        bf16=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        **common,
    )
    timer = StepTimer(args.warmup)
    trainer = DPOTrainer(
        model=model,
        args=trl_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[timer.callback],
    )
    trainer.train()
    return {"pairs_per_s": args.steps * args.batch_size / timer.seconds, "train_s": timer.seconds}


def r_pairs(args) -> int:
    """Pairs in the dataset: warm-up and timed steps, one epoch."""
    return (args.warmup + args.steps) * args.batch_size


def common_training(output_dir: Path, args) -> dict:
    return dict(
        output_dir=str(output_dir),
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        logging_steps=10_000,
        save_steps=10_000,
        seed=0,
        report_to=["none"],
        progress_bar=False,
    )


def measure(which: str, work: Path, args) -> dict:
    """One trainer's run on the model and pairs in ``work``: pairs/s, and peak GPU memory on a GPU."""
    import torch

    reset_peak_memory()
    result = run_tether(work, args) if which == "tether" else run_trl(work, args)
    result["peak_rss_mb"] = peak_rss_mb()
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = peak_memory_mb()
    return result


def worker(which: str, work: Path, args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    print("RESULT " + json.dumps(measure(which, work, args)), flush=True)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--patch-size", type=int, default=12, help="96/12 → 64 image tokens")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each trainer; best kept")
    parser.add_argument(
        "--lora", action="store_true", help="LoRA on both (TRL's reference = adapters disabled)"
    )
    parser.add_argument("--worker", choices=["tether", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = parser().parse_args()
    if args.worker:
        worker(args.worker, Path(args.work), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_model(work, args)
        build_data(work, r_pairs(args))
        print(
            f"LLaVA random init: hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
            f"{(args.image_size // args.patch_size) ** 2} image tokens, ~20-token prompt, ~30-token responses; "
            f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps, {args.threads} threads, "
            f"{args.dtype}, {'LoRA' if args.lora else 'full fine-tuning'}"
        )
        results: dict[str, dict] = {}
        rounds: dict[str, list[dict]] = {}
        # alternate the two trainers, so that a load spike on a shared machine does not hit one of them only
        for round_ in range(args.rounds):
            for which in ("tether", "trl"):
                command = [sys.executable, __file__, "--worker", which, "--work", str(work), *sys.argv[1:]]
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode != 0 or not lines:
                    sys.exit(f"{which} worker failed:\n{done.stderr[-3000:]}")
                r = json.loads(lines[-1][len("RESULT ") :])
                extra = (
                    f", reference pass {r['reference_s']:.2f}s for all pairs" if "reference_s" in r else ""
                )
                print(
                    f"round {round_ + 1} {which:7s} pairs/s {r['pairs_per_s']:.3f}  "
                    f"timed steps {r['train_s']:.1f}s  peak RSS {r['peak_rss_mb']:.0f} MB{extra}",
                    flush=True,
                )
                rounds.setdefault(which, []).append(r)
        # per phase, the fastest round (as timeit does): load from other processes only ever adds time
        timed_pairs = args.steps * args.batch_size
        for which, runs in rounds.items():
            seconds = min(r["train_s"] for r in runs)
            if which == "tether":
                seconds += min(r["reference_s"] for r in runs) * timed_pairs / r_pairs(args)
            results[which] = {
                "pairs_per_s": timed_pairs / seconds,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            }
            print(
                f"{which:7s} best pairs/s {results[which]['pairs_per_s']:.3f}  peak RSS {results[which]['peak_rss_mb']:.0f} MB"
            )
        print(
            f"ratio tether/trl peak_rss: {results['tether']['peak_rss_mb'] / results['trl']['peak_rss_mb']:.2f}"
        )
        print(
            f"ratio tether/trl pairs_per_s: {results['tether']['pairs_per_s'] / results['trl']['pairs_per_s']:.2f}"
        )


if __name__ == "__main__":
    main()
