"""`tether study --make-baseline DIR`: train the preset's baseline once, through the study's own stages, and
write its final model with ``manifest.json`` (recipe, seed, world, code version, each file's sha256) as a
shipped baseline (``tether.study.shipped``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.core.errors import TetherError
from tether.core.io import read_json, write_json
from tether.study.pipeline import run_study
from tether.study.preset import baseline_recipe, world_settings
from tether.study.shipped import MANIFEST, recipe_record, sha256
from tether.world.config import load_world_config

logger = logging.getLogger(__name__)

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


def make_baseline(preset, out_dir, work_dir, overwrite: bool = False) -> Path:
    """Train and evaluate ``preset``'s baseline (first seed) under ``work_dir``, then write its final model
    and ``manifest.json`` into ``out_dir``; returns the manifest's path. An ``out_dir`` that already holds
    this baseline, intact, is left as it is; one made with other settings is refused unless ``overwrite``."""
    seed = preset.seeds[0]
    preset = dataclasses.replace(preset, seeds=[seed], variants=["baseline"], shipped_baseline="")
    if _already_made(Path(out_dir), _made_for(preset, seed), overwrite):
        logger.info("%s already holds this baseline: nothing to do (--overwrite remakes it)", out_dir)
        return Path(out_dir) / MANIFEST
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


def _made_for(preset, seed: int) -> dict:
    """The manifest entries that decide a baseline's files and metrics (the code version aside: a remake
    on newer code with the same settings is the same baseline)."""
    settings = {**world_settings(preset), "seed": seed}
    world = load_world_config(None, [f"{k}={json.dumps(v)}" for k, v in settings.items()])
    made_for = {
        "seed": seed,
        "recipe": recipe_record(baseline_recipe(preset, seed)),
        "world": dataclasses.asdict(world),
        "eval_limits": preset.eval_limits,
        "torch_threads": TRAINING_THREADS,
    }
    return json.loads(json.dumps(made_for))  # as the manifest's JSON holds it (tuples as lists)


def _already_made(out_dir: Path, made_for: dict, overwrite: bool) -> bool:
    """True when ``out_dir`` holds the baseline ``made_for`` describes with every file its manifest records;
    refuses (unless ``overwrite``) a folder holding another baseline or files that are no baseline's."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return False
    if not (out_dir / MANIFEST).is_file():
        if overwrite:
            return False
        raise TetherError(
            f"{out_dir} is a non-empty folder without {MANIFEST}, so no baseline: choose another folder, or "
            "pass --overwrite to replace its files"
        )
    manifest = read_json(out_dir / MANIFEST)
    changed = []
    for key, value in made_for.items():
        old = manifest.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = sorted(k for k in set(value) | set(old) if value.get(k) != old.get(k))
            changed += [f"{key}.{k}" for k in inner]
        elif value != old:
            changed.append(key)
    if changed and not overwrite:
        raise TetherError(
            f"{out_dir} holds a baseline made with other settings ({', '.join(sorted(changed))} differ): pass "
            "--overwrite to replace it, or choose another folder"
        )
    intact = all(
        (out_dir / name).is_file() and sha256(out_dir / name) == digest
        for name, digest in manifest.get("files", {}).items()
    )
    return not changed and intact and not overwrite


def _store_half(source: Path, target: Path) -> None:
    """Half the bytes: floating-point weights rounded to float16 (``install_shipped`` restores their dtype)."""
    weights = load_file(source)
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target, {"format": "pt"}
    )
