"""Evaluate a model on a world's benchmark exports with the one evaluation harness.

The world writes real benchmark formats, so this is only a list of (benchmark, data file, options):
the loaders, runner and scorers are the same ones that score LLaVA on COCO.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tether.decoding.registry import get_strategy
from tether.eval.pope import SPLITS as POPE_SPLITS
from tether.eval.registry import get_benchmark
from tether.eval.runner import run_benchmark
from tether.models import load
from tether.models.decoding import DecodingSettings
from tether.world.judge import WorldRuleJudge

YES_NO_TOKENS = 8  # yes/no answers generated (a strategy with no fast variant): the first word decides

# what the study measures every model on, with the same settings for each
BENCHMARKS = ("pope_random", "pope_popular", "pope_adversarial", "chair", "mmhal", "shr")


def world_benchmarks(world_dir) -> dict[str, tuple[str, Path, dict]]:
    """name -> (benchmark, data file, load options) for every export the harness scores offline."""
    bench = Path(world_dir) / "bench"
    runs = {
        f"pope_{split}": ("pope", bench / "pope" / f"world_pope_{split}.jsonl", {}) for split in POPE_SPLITS
    }
    runs["chair"] = (
        "chair",
        bench / "chair" / "gt_objects.json",
        {"synonyms": bench / "chair" / "synonyms.txt", "questions": bench / "chair" / "questions.jsonl"},
    )
    runs["mme"] = ("mme", bench / "mme", {})
    runs["amber_discriminative"] = (
        "amber",
        bench / "amber" / "query_discriminative.json",
        {"annotations": bench / "amber" / "annotations.json"},
    )
    runs["mmhal"] = ("mmhal", bench / "mmhal" / "mmhal_world.json", {})
    runs["shr"] = ("shr", bench / "shr" / "shr_world.jsonl", {})
    return runs


def evaluate_world(
    world_dir,
    out_dir,
    *,
    model_path=None,
    vlm=None,
    names=("pope_random", "pope_popular", "pope_adversarial", "chair"),
    yes_no_mode: str = "fast",
    max_new_tokens: int = 64,
    batch_size: int = 32,
    limit: int | None = None,
    progress: bool = True,
    judge=None,
    decoding: DecodingSettings | None = None,
) -> dict[str, dict[str, float]]:
    """Run and score ``names`` (keys of ``world_benchmarks``); returns metrics per name. ``decoding``: a
    strategy of ``tether.decoding`` (its ``max_new_tokens`` is replaced by ``max_new_tokens``); yes/no
    benchmarks use its fast variant, or where it has none (OPERA) generation of ``YES_NO_TOKENS``."""
    if vlm is None:
        vlm = load(model_path)
    world_dir, out_dir = Path(world_dir), Path(out_dir)
    available = world_benchmarks(world_dir)
    metrics = {}
    for name in names:
        bench_name, data_file, options = available[name]
        benchmark = get_benchmark(bench_name)
        # The world is tether's own data, not a published benchmark: score it with tether's corrections
        # (pattern's singulariser turns the "cross" shape into "cros"; a limit can cut an MME pair).
        benchmark.corrected = True
        items = benchmark.load_items(data_file, **options)
        if limit is not None:
            items = items[:limit]
        yes_no = all(item.kind == "yesno" for item in items)
        # MME's subtask folders hold their own images
        images_root = data_file if bench_name == "mme" else world_dir / "images"
        mode, settings = (
            yes_no_mode if yes_no else "generate",
            DecodingSettings(max_new_tokens=max_new_tokens),
        )
        if decoding is not None:
            settings = replace(decoding, max_new_tokens=max_new_tokens)
            if yes_no and get_strategy(decoding.strategy).margins is None:
                mode, settings.max_new_tokens = "generate", YES_NO_TOKENS
        score = run_benchmark(
            benchmark,
            items,
            vlm=vlm,
            model_path=model_path,
            images_root=images_root,
            out_dir=out_dir / name,
            mode=mode,
            decoding=settings,
            data_file=data_file,
            data_version=f"tether-world:{world_dir.name}",
            judge=judge if benchmark.needs_judge else None,
            progress=progress,
            batch_size=batch_size,
        )
        metrics[name] = score.metrics
    return metrics


def evaluate_model(
    model: str,
    world: Path,
    folder: Path,
    limits: dict,
    progress: bool,
    decoding: DecodingSettings | None = None,
) -> dict:
    """The study's evaluation of one model: every benchmark of ``BENCHMARKS`` (at most ``limits[name]``
    items each), as flat ``{"<benchmark>/<metric>": value}``; ``decoding``: a strategy of
    ``tether.decoding`` (``tether.study.decoding``), None for the model's greedy decoding."""
    vlm = load(model)
    judge = WorldRuleJudge(world)
    metrics = {}
    for name in BENCHMARKS:
        metrics.update(
            {
                f"{name}/{k}": v
                for k, v in evaluate_world(
                    world,
                    folder,
                    vlm=vlm,
                    names=[name],
                    limit=limits.get(name),
                    progress=progress,
                    judge=judge,
                    decoding=decoding,
                )[name].items()
                if isinstance(v, int | float)
            }
        )
    return metrics
