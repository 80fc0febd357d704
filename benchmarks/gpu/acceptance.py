"""GPU acceptance run: tether's speed and memory claims checked on one CUDA GPU, in one command.

    PYTHONPATH=src python benchmarks/gpu/acceptance.py [--out acceptance.json] [--layers 4]
    PYTHONPATH=src python benchmarks/gpu/acceptance.py --tiny      # CPU, toy sizes: the CI check

Builds two random-init models at the shapes of the 7B checkpoints people train, cut to ``--layers`` decoder
layers, and loads them through ``tether.models.load`` as any checkpoint folder:

- LLaVA-1.5-7B: Llama with hidden size 4096, MLP 11008, 32 heads, a 32064-token vocabulary, and the
  CLIP ViT-L/14-336 tower (24 layers, 576 visual tokens per image) behind its two-layer MLP projector;
- Qwen2.5-VL-7B: Qwen2 with hidden size 3584, MLP 18944, 28 heads (4 KV heads), a 152064-token vocabulary,
  M-RoPE, and its 32-layer windowed-attention vision tower (patch 14, 2x2 merge).

Then, in bfloat16 (``--tiny``: float32 on CPU), each measured by the script that makes the claim elsewhere
(``benchmarks/dpo_vs_trl.py``, ``pope_fast_vs_generate.py``, ``hacl_step.py``):

- DPO, tether against TRL's DPOTrainer on LLaVA: pairs/s and peak memory, and their ratios;
- POPE fast mode against batch-1 generation on both models: questions/s, ratio, answer agreement;
- a HACL step against a plain stage-1 step on both models: step time ratio and memory;
- a PPO step (rollout, reward, update) on LLaVA with LoRA: step time and memory.

Peak memory is CUDA's ``max_memory_allocated`` per phase (on CPU: the process's peak RSS, which only grows).
Prints every figure and writes them, with the device name and library versions, to one JSON file.
``docs/scaling.md`` says what each figure should be near and when to file a bug.
"""

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))

import dpo_vs_trl  # noqa: E402
import hacl_step  # noqa: E402
import pope_fast_vs_generate  # noqa: E402
from common import clock, device, peak_memory_mb, reset_peak_memory  # noqa: E402
from tether.models import load  # noqa: E402
from tether.models.tiny import LLAVA_TEMPLATE, QWEN2_VL_TEMPLATE, save_checkpoint  # noqa: E402
from tether.models.tiny_families import QWEN_SPECIALS, qwen_token_ids  # noqa: E402
from tether.models.tokenizer import build_word_tokenizer  # noqa: E402

WORDS = sorted(set(dpo_vs_trl.WORDS + hacl_step.WORDS + "yes no what color describe image stars".split()))


@dataclass
class Sizes:
    """The dimensions that set a model's cost; ``REAL`` are the 7B checkpoints', ``TINY`` a CPU's."""

    llava_hidden: int = 4096
    llava_intermediate: int = 11008
    llava_heads: int = 32
    llava_vocab: int = 32064
    clip_hidden: int = 1024
    clip_intermediate: int = 4096
    clip_layers: int = 24
    clip_heads: int = 16
    clip_image: int = 336  # 336 / 14 = 24 patches a side: 576 visual tokens
    qwen_hidden: int = 3584
    qwen_intermediate: int = 18944
    qwen_heads: int = 28
    qwen_kv_heads: int = 4
    qwen_vocab: int = 152064
    qwen_vision_hidden: int = 1280
    qwen_vision_intermediate: int = 3420
    qwen_vision_layers: int = 32
    qwen_vision_heads: int = 16
    qwen_full_attention: tuple = (7, 15, 23, 31)
    qwen_window: int = 112
    qwen_image: int = 336  # 24x24 patches merged 2x2: 144 visual tokens
    patch: int = 14


REAL = Sizes()
TINY = Sizes(
    llava_hidden=64,
    llava_intermediate=172,
    llava_heads=2,
    llava_vocab=1000,
    clip_hidden=32,
    clip_intermediate=128,
    clip_layers=2,
    clip_heads=2,
    clip_image=56,
    qwen_hidden=64,
    qwen_intermediate=296,
    qwen_heads=2,
    qwen_kv_heads=1,
    qwen_vocab=1000,
    qwen_vision_hidden=32,
    qwen_vision_intermediate=86,
    qwen_vision_layers=2,
    qwen_vision_heads=2,
    qwen_full_attention=(1,),
    qwen_window=56,
    qwen_image=56,
)


def llava_1_5(sizes: Sizes, layers: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = build_word_tokenizer(WORDS, {"image_token": "<image>"})
    text = LlamaConfig(
        vocab_size=sizes.llava_vocab,
        hidden_size=sizes.llava_hidden,
        intermediate_size=sizes.llava_intermediate,
        num_hidden_layers=layers,
        num_attention_heads=sizes.llava_heads,
        num_key_value_heads=sizes.llava_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=sizes.clip_hidden,
        intermediate_size=sizes.clip_intermediate,
        num_hidden_layers=sizes.clip_layers,
        num_attention_heads=sizes.clip_heads,
        image_size=sizes.clip_image,
        patch_size=sizes.patch,
        projection_dim=768,
        hidden_act="quick_gelu",
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": sizes.clip_image},
        crop_size={"height": sizes.clip_image, "width": sizes.clip_image},
    )
    return LlavaForConditionalGeneration(config), tokenizer, image_processor, LLAVA_TEMPLATE


def qwen2_5_vl(sizes: Sizes, layers: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = build_word_tokenizer(WORDS, QWEN_SPECIALS)
    half = sizes.qwen_hidden // sizes.qwen_heads // 2  # rotary pairs per head, split over time/height/width
    section = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]  # 7B: [16, 24, 24]
    text = dict(
        vocab_size=sizes.qwen_vocab,
        hidden_size=sizes.qwen_hidden,
        intermediate_size=sizes.qwen_intermediate,
        num_hidden_layers=layers,
        num_attention_heads=sizes.qwen_heads,
        num_key_value_heads=sizes.qwen_kv_heads,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section},
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        depth=sizes.qwen_vision_layers,
        hidden_size=sizes.qwen_vision_hidden,
        intermediate_size=sizes.qwen_vision_intermediate,
        num_heads=sizes.qwen_vision_heads,
        out_hidden_size=sizes.qwen_hidden,
        patch_size=sizes.patch,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=sizes.qwen_window,
        fullatt_block_indexes=list(sizes.qwen_full_attention),
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        **qwen_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    side = sizes.qwen_image
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=sizes.patch,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=side * side,
        max_pixels=side * side,
    )
    return Qwen2_5_VLForConditionalGeneration(config), tokenizer, image_processor, QWEN2_VL_TEMPLATE


FAMILIES = {"llava_1_5_7b": llava_1_5, "qwen2_5_vl_7b": qwen2_5_vl}


def build(family: str, sizes: Sizes, layers: int, dtype: torch.dtype, out: Path) -> Path:
    """Random-init weights built on the device in ``dtype`` (seconds on a GPU, not minutes on a CPU), saved."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device():
            model, tokenizer, image_processor, template = FAMILIES[family](sizes, layers)
    finally:
        torch.set_default_dtype(default)
    save_checkpoint(out, model, tokenizer, image_processor, template)
    del model
    return out


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def model_figures(path: Path, dtype: str, image_size: int) -> dict:
    """Load time, parameter count and visual tokens per image of the checkpoint, loaded as tether loads."""
    start = clock()
    vlm = load(path, dtype=dtype, device=str(device()))
    seconds = clock() - start
    batch = vlm.encode([Image.new("RGB", (image_size, image_size), "red")], ["describe the image"])
    figures = {
        "load_s": seconds,
        "parameters": sum(p.numel() for p in vlm.model.parameters()),
        "hidden_size": vlm.hidden_size,
        "vocab_size": vlm.model.get_output_embeddings().weight.shape[0],
        "visual_tokens": int(vlm.visual_token_mask(batch.input_ids).sum()),
        "dtype": str(next(vlm.model.parameters()).dtype).removeprefix("torch."),
    }
    del vlm
    free_memory()
    return figures


def dpo_figures(model: Path, work: Path, dtype: str, tiny: bool, rounds: int) -> dict:
    """``dpo_vs_trl``'s two trainers on the LLaVA checkpoint, alternating; best pairs/s, largest peak."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "model").symlink_to(model)
    options = ["--dtype", dtype, "--batch-size", "2" if tiny else "4", "--steps", "2" if tiny else "6"]
    args = dpo_vs_trl.parser().parse_args([*options, "--warmup", "1"])
    dpo_vs_trl.build_data(work, dpo_vs_trl.r_pairs(args))
    runs = {"tether": [], "trl": []}
    for _ in range(rounds):
        for which in runs:
            runs[which].append(dpo_vs_trl.measure(which, work, args))
            free_memory()
    result = {}
    for which, measured in runs.items():
        result[which] = {
            "pairs_per_s": max(r["pairs_per_s"] for r in measured),
            "peak_memory_mb": max(r.get("peak_gpu_mb", r["peak_rss_mb"]) for r in measured),
        }
    result["ratio_pairs_per_s"] = result["tether"]["pairs_per_s"] / result["trl"]["pairs_per_s"]
    result["ratio_peak_memory"] = result["tether"]["peak_memory_mb"] / result["trl"]["peak_memory_mb"]
    result["setting"] = {"batch_size": args.batch_size, "timed_steps": args.steps, "rounds": rounds}
    return result


def answers_yes_or_no(vlm) -> None:
    """Make a random-init model answer POPE questions with one word, "yes" or "no", as a trained one does:
    the LM head scores only the yes and no tokens (opposite directions, so one of them always wins), and
    generation stops at either. Fast mode then reads the same decision off the first position's logits,
    so the agreement measures what it does for a trained model: batched, padded scoring against generation."""
    from tether.decoding.yes_no import yes_no_token_ids

    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    head = vlm.model.get_output_embeddings().weight
    direction = torch.randn(head.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.zero_()
        head[yes_ids] = (direction / direction.norm() * 8).to(head)
        head[no_ids] = -head[yes_ids[0]]
    vlm.stop_token_ids = [vlm.eos_token_id, *yes_ids, *no_ids]


def pope_questions(folder: Path, n: int, image_size: int) -> Path:
    """``n`` POPE questions over ``n // 3`` images (three objects asked per image, as POPE does)."""
    rng = random.Random(0)
    colours = ["red", "blue", "green", "white", "black", "yellow"]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image = f"{i // 3}.png"
        if i % 3 == 0:
            noise = [rng.choice(colours) for _ in range(16)]
            picture = Image.new("RGB", (4, 4))
            picture.putdata([Image.new("RGB", (1, 1), c).getpixel((0, 0)) for c in noise])
            picture.resize((image_size, image_size)).save(folder / "images" / image)
        thing = rng.choice(["square", "circle", "triangle", "star"])
        label = "yes" if i % 2 else "no"
        rows.append({"question_id": i, "image": image, "text": f"is there a {thing} ?", "label": label})
    path = folder / "pope_random.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pope_figures(model: Path, work: Path, dtype: str, image_size: int, questions: int) -> dict:
    from tether.eval.registry import get_benchmark

    vlm = load(model, dtype=dtype, device=str(device()))
    answers_yes_or_no(vlm)
    items = get_benchmark("pope").load_items(pope_questions(work, questions, image_size))
    result = pope_fast_vs_generate.compare_modes(vlm, items, work / "images", work)
    result["questions"] = len(items)
    del vlm
    free_memory()
    return result


def hacl_figures(model: Path, dtype: str, image_size: int, tiny: bool) -> dict:
    from tether.methods.settings import ModelSettings
    from tether.methods.tuning import configure_trainable

    vlm = load(model, dtype=dtype, device=str(device()))
    configure_trainable(vlm, ModelSettings(freeze_llm=True))  # stage 1: the projector trains
    steps, rounds = (2, 1) if tiny else (5, 3)
    result = hacl_step.compare_steps(vlm, 4 if tiny else 8, image_size, steps, 1, rounds)
    del vlm
    free_memory()
    return result


def ppo_figures(model: Path, work: Path, dtype: str, image_size: int, tiny: bool) -> dict:
    """Two PPO steps (LoRA policy, LoRA value on the reward model); the second is timed."""
    from tether.core.config import load_config
    from tether.data.rlhf import load_prompt_records
    from tether.methods.ppo import PPOConfig, PPORunner
    from tether.methods.reward import RewardModel

    (work / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "white"]):
        Image.new("RGB", (image_size, image_size), colour).save(work / "images" / f"{i}.png")
        rows.append({"image": f"{i}.png", "prompt": "what color is it ?", "facts": [f"a {colour} square ."]})
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reward = RewardModel(load(model, dtype=dtype, device=str(device()))).save(work / "reward")
    free_memory()
    config = load_config(
        PPOConfig,
        None,
        [
            f"model.path={model}",
            f"model.dtype={dtype}",
            "model.lora={r: 16, alpha: 32, dropout: 0.0}",
            f"data.train=[{prompts}]",
            f"data.images={work / 'images'}",
            f"ppo.reward_model={reward}",
            f"train.output_dir={work / 'run'}",
            "ppo.rollout_batch_size=4",
            "ppo.mini_batch_size=2",
            f"ppo.max_new_tokens={8 if tiny else 32}",
        ],
    )
    records = load_prompt_records(prompts)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # the DPO trainers' Accelerator, not PPO's
    reset_peak_memory()
    runner = PPORunner(config)
    runner.step(0, records)  # warm-up: kernels, allocator
    start = clock()
    metrics, rollout = runner.step(1, records)
    seconds = clock() - start
    result = {
        "step_s": seconds,
        "peak_memory_mb": peak_memory_mb(),
        "prompts_per_step": len(records),
        "max_new_tokens": config.ppo.max_new_tokens,
        "kl": float(metrics["kl"]),
    }
    del runner, rollout
    free_memory()
    return result


def environment(dtype: str, sizes: Sizes, layers: int) -> dict:
    from tether.core.provenance import environment as provenance

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    return {
        "device": name,
        "device_memory_gib": memory,
        "cuda": torch.version.cuda,
        "dtype": dtype,
        "decoder_layers": layers,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(sizes).items()},
        **provenance(),
    }


def report(figures: dict) -> list[str]:
    """The lines that sum the run up; every figure is in the JSON file as well."""
    lines = [f"device {figures['environment']['device']}, {figures['environment']['dtype']}"]
    for family, model in figures["models"].items():
        lines.append(
            f"{family}: {model['parameters'] / 1e6:.1f}M parameters, hidden {model['hidden_size']}, vocab "
            f"{model['vocab_size']}, {model['visual_tokens']} visual tokens, loaded in {model['load_s']:.1f}s"
        )
    dpo = figures["dpo"]
    for which in ("tether", "trl"):
        lines.append(
            f"dpo {which:6s} {dpo[which]['pairs_per_s']:8.2f} pairs/s  peak {dpo[which]['peak_memory_mb']:8.0f} MB"
        )
    for family, pope in figures["pope"].items():
        lines.append(
            f"pope {family}: generate {pope['generate']['questions_per_s']:.1f} q/s, fast "
            f"{pope['fast']['questions_per_s']:.1f} q/s, agreement {pope['agreement']:.4f}"
        )
    for family, hacl in figures["hacl"].items():
        lines.append(
            f"hacl {family}: plain step {hacl['plain']['step_s'] * 1000:.0f} ms, hacl step "
            f"{hacl['hacl']['step_s'] * 1000:.0f} ms, peak {hacl['hacl']['peak_memory_mb']:.0f} MB"
        )
    ppo = figures["ppo"]
    lines.append(f"ppo step {ppo['step_s']:.2f}s  peak {ppo['peak_memory_mb']:.0f} MB")
    for family, pope in figures["pope"].items():
        lines.append(f"ratio fast/generate questions_per_s {family}: {pope['ratio_questions_per_s']:.2f}")
    for family, hacl in figures["hacl"].items():
        lines.append(f"ratio hacl/plain step_time {family}: {hacl['ratio_step_time']:.2f}")
    lines.append(f"ratio tether/trl peak_memory: {dpo['ratio_peak_memory']:.2f}")
    lines.append(f"ratio tether/trl pairs_per_s: {dpo['ratio_pairs_per_s']:.2f}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="acceptance.json", help="JSON file for every figure")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers kept of each 7B model")
    parser.add_argument("--questions", type=int, default=150, help="POPE questions per mode")
    parser.add_argument("--rounds", type=int, default=2, help="alternating DPO rounds per trainer")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, float32, on CPU: the CI check")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: run on a GPU machine, or with --tiny for the CPU check")
    sizes, dtype = (TINY, "float32") if args.tiny else (REAL, "bfloat16")
    layers = 2 if args.tiny else args.layers
    questions, rounds = (12, 1) if args.tiny else (args.questions, args.rounds)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = {"llava_1_5_7b": sizes.clip_image, "qwen2_5_vl_7b": sizes.qwen_image}
        paths = {f: build(f, sizes, layers, getattr(torch, dtype), tmp / f) for f in FAMILIES}
        figures = {"environment": environment(dtype, sizes, layers)}
        figures["models"] = {f: model_figures(paths[f], dtype, images[f]) for f in FAMILIES}
        llava = paths["llava_1_5_7b"]
        figures["dpo"] = dpo_figures(llava, tmp / "dpo", dtype, args.tiny, rounds)
        figures["pope"] = {
            f: pope_figures(paths[f], tmp / f"pope-{f}", dtype, images[f], questions) for f in FAMILIES
        }
        figures["hacl"] = {f: hacl_figures(paths[f], dtype, images[f], args.tiny) for f in FAMILIES}
        figures["ppo"] = ppo_figures(llava, tmp / "ppo", dtype, sizes.clip_image, args.tiny)
    figures["total_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for line in report(figures):
        print(line)
    print(f"total {figures['total_s']:.0f}s; every figure in {out}")


if __name__ == "__main__":
    main()
