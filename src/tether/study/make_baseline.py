"""`tether study --make-baseline DIR`: train the preset's baseline once, through the study's own stages, and
write its final model with ``manifest.json`` (recipe, seed, world, code version, each file's sha256) as a
shipped baseline (``tether.study.shipped``)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.core.errors import TetherError
from tether.core.io import read_json, write_json
from tether.study.pipeline import run_study
from tether.study.preset import baseline_recipe
from tether.study.shipped import MANIFEST, recipe_record, sha256

TRAINING_THREADS = 1  # see make_baseline


def _code_version() -> str:
    """The git commit of tether's source tree, "unknown" outside a git checkout."""
    status = ["git", "status", "--porcelain", "--", ".", ":(exclude)baselines"]  # the code, not its output
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            status, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if found.returncode != 0:
        return "unknown"
    return found.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")


def make_baseline(preset, out_dir, work_dir) -> Path:
    """Train and evaluate ``preset``'s baseline (first seed) under ``work_dir``, then write its final model
    and ``manifest.json`` into ``out_dir``; returns the manifest's path."""
    seed = preset.seeds[0]
    preset = dataclasses.replace(preset, seeds=[seed], variants=["baseline"], shipped_baseline="")
    # one CPU thread: the thread count changes the order of floating-point reductions, and the recipe's
    # escape from the existence plateau depends on that rounding (docs/baseline.md), so a retrain with
    # another thread count is another model; with one thread the command repeats the shipped bytes
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        run_study(preset, work_dir, progress=False)
    finally:
        torch.set_num_threads(threads)
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    seed_dir = work_dir / f"seed{seed}"
    model = seed_dir / "baseline" / "sft" / "model"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if old.is_file():
            old.unlink()
    files = {}
    for path in sorted(p for p in model.iterdir() if p.is_file()):
        if path.suffix in {".bin", ".pt", ".pth", ".pkl"}:  # safetensors only: no pickled weights ship
            raise TetherError(f"{path}: pickled weights; the shipped baseline takes safetensors only")
        if path.suffix == ".safetensors":
            _store_half(path, out_dir / path.name)
        else:
            shutil.copyfile(path, out_dir / path.name)
        files[path.name] = sha256(out_dir / path.name)
    if not any(name.endswith(".safetensors") for name in files):
        raise TetherError(f"{model}: no safetensors weights to ship")
    metrics = read_json(work_dir / "metrics.json")[str(seed)]["baseline"]
    manifest = {
        "command": f"tether study --make-baseline {out_dir} --out {work_dir}",
        "preset": preset.name,
        "seed": seed,
        "recipe": recipe_record(baseline_recipe(preset, seed)),
        "world": read_json(seed_dir / "world" / "world.json")["config"],
        "eval_limits": preset.eval_limits,
        # the weights are stored rounded to float16 and loaded as float32 (the model's dtype); the metrics
        # are the float32 model's, which the rounded one repeats (docs/results/quick-recipe-pilot, run E)
        "storage_dtype": "float16",
        "torch_threads": TRAINING_THREADS,
        "code_version": _code_version(),
        "metrics": metrics,
        "files": files,
    }
    path = out_dir / MANIFEST
    write_json(path, manifest)
    return path


def _store_half(source: Path, target: Path) -> None:
    """Half the bytes: floating-point weights rounded to float16 (``install_shipped`` restores their dtype)."""
    weights = load_file(source)
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target, {"format": "pt"}
    )
