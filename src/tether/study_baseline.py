"""The quick preset's shipped baseline: a trained baseline model kept with tether as package data.

The baseline recipe that leaves the existence plateau and describes (docs/results/quick-recipe-pilot) takes
minutes of training on two cores, more than the quick preset's budget. So ``tether study --make-baseline DIR``
trains it once (the quick preset's world, recipe and seed, through the study's own stages), evaluates it, and
writes the final model's files with ``manifest.json``: recipe, seed, world config, code version and each
file's sha256. The quick preset takes that model as its baseline when its world, recipe, seed and variants
are the ones it was made for, and trains as any preset does otherwise, saying why. The baseline's
``stage.json`` names the manifest's digest, so every stage built on it (and so the study's fingerprints)
records which baseline was used.

Only the final (SFT) model ships, its weights stored in float16 (half the bytes; the rounding leaves the
measured metrics as they were) and loaded as float32: the quick preset's variants all start from it. Variants that restart from
an earlier stage (HACL, NoiseBoost SFT, the SSL pair) need the recipe's earlier models and train them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.io import read_json, write_json

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "baselines"
MANIFEST = "manifest.json"
# the variants that start from the baseline's final model, so the shipped model is all they need
FROM_FINAL_MODEL = {"baseline", "ha_dpo", "noiseboost_dpo", "fact_rlhf"}


TRAINING_THREADS = 1  # see make_baseline


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _recipe_record(recipe) -> dict:
    """What the trained model depends on in the recipe (the progress bar does not)."""
    return {k: v for k, v in dataclasses.asdict(recipe).items() if k != "progress_bar"}


def _code_version() -> str:
    """The git commit of tether's source tree, "unknown" outside a git checkout."""
    status = ["git", "status", "--porcelain", "--", ".", ":(exclude)baselines"]  # the code, not its output
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(status, cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if found.returncode != 0:
        return "unknown"
    return found.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")


def make_baseline(preset, out_dir, work_dir, overwrite: bool = False) -> Path:
    """Train and evaluate ``preset``'s baseline (first seed) under ``work_dir``, then write its final model
    and ``manifest.json`` into ``out_dir``; returns the manifest's path. An ``out_dir`` that already holds
    this baseline, intact, is left as it is; one made with other settings is refused unless ``overwrite``."""
    import torch

    from tether.study import run_study

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
        "recipe": _recipe_record(_recipe(preset, seed)),
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
    from tether.study import _world_settings
    from tether.world.config import load_world_config

    settings = {**_world_settings(preset), "seed": seed}
    world = load_world_config(None, [f"{k}={json.dumps(v)}" for k, v in settings.items()])
    made_for = {
        "seed": seed,
        "recipe": _recipe_record(_recipe(preset, seed)),
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
    from safetensors.torch import load_file, save_file

    weights = load_file(source)
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target, {"format": "pt"}
    )


def _load_float32(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(source)
    save_file(
        {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, target, {"format": "pt"}
    )


def _recipe(preset, seed: int):
    from tether.study import baseline_recipe

    return baseline_recipe(preset, seed)


def manifest_digest(manifest_path: Path) -> str:
    return sha256(manifest_path)[:16]


def why_not_shipped(preset, seed: int, world_config, recipe) -> str | None:
    """Why the shipped baseline cannot serve this run (None: it can)."""
    folder = SHIPPED / preset.shipped_baseline
    if not (folder / MANIFEST).is_file():
        return f"no shipped baseline at {folder}"
    manifest = read_json(folder / MANIFEST)
    if seed != manifest["seed"]:
        return f"seed {seed}, the shipped baseline's is {manifest['seed']}"
    world = json.loads(json.dumps(dataclasses.asdict(world_config)))
    changed = sorted(
        k for k in set(world) | set(manifest["world"]) if world.get(k) != manifest["world"].get(k)
    )
    if changed:
        return f"world settings {changed} differ from the shipped baseline's"
    record = json.loads(json.dumps(_recipe_record(recipe)))
    changed = sorted(
        k for k in set(record) | set(manifest["recipe"]) if record.get(k) != manifest["recipe"].get(k)
    )
    if changed:
        return f"recipe settings {changed} differ from the shipped baseline's"
    earlier = sorted(set(preset.variants) - FROM_FINAL_MODEL)
    if earlier:
        return f"variants {earlier} start from the recipe's earlier stages, which are not shipped"
    for name, digest in manifest["files"].items():
        if not (folder / name).is_file() or sha256(folder / name) != digest:
            raise TetherError(
                f"{folder / name}: missing or not the file {folder / MANIFEST} records (sha256)"
            )
    return None


def install_shipped(preset, world_dir: Path, baseline_dir: Path, recipe) -> Path:
    """Put the shipped model where the recipe's final stage would be, with the recipe's data files (later
    stages read them); returns the model folder. Its ``stage.json`` names the manifest's digest."""
    from tether.methods.run_record import read_marker, start_stage
    from tether.world.baseline import prepare_data

    folder = SHIPPED / preset.shipped_baseline
    manifest = read_json(folder / MANIFEST)
    prepare_data(
        world_dir, baseline_dir / "data", recipe.existence_repeats, recipe.grounding_in_sft, recipe.seed
    )
    fingerprint = f"shipped:{preset.shipped_baseline}:{manifest_digest(folder / MANIFEST)}"
    stage_dir = baseline_dir / "sft"
    model = stage_dir / "model"
    if read_marker(stage_dir / "stage.json").get("fingerprint") != fingerprint:
        start_stage(stage_dir, fingerprint)
        model.mkdir(parents=True, exist_ok=True)
        for name in manifest["files"]:
            if name.endswith(".safetensors"):  # stored in float16, computed in float32 as when trained
                _load_float32(folder / name, model / name)
            else:
                shutil.copyfile(folder / name, model / name)
        write_json(
            stage_dir / "stage.json",
            {
                "stage": "sft",
                "fingerprint": fingerprint,
                "shipped": {"name": preset.shipped_baseline, "code_version": manifest["code_version"]},
            },
        )
    return model
