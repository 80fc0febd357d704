"""The quick preset's shipped baseline: a trained baseline model kept with tether as package data.

The baseline recipe that leaves the existence plateau and describes (docs/results/quick-recipe-pilot) takes
minutes of training on two cores, more than the quick preset's budget. So ``tether study --make-baseline DIR``
trains it once (the quick preset's world, recipe and seed, through the study's own stages), evaluates it, and
writes the final model's files with ``manifest.json``: recipe, seed, world config, code version and each
file's sha256. The quick preset takes that model as its baseline when its world, recipe, seed and variants
are the ones it was made for, and trains as any preset does otherwise, saying why. The baseline's stage key
is made from the manifest, so every stage built on it (their keys hold it) records which baseline was used.
Whether a run may take it depends on the manifest's settings, never on stage keys: a change of stage keys
leaves the shipped baseline valid.

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
from pathlib import Path

from safetensors.torch import load_file, save_file

from tether.core.errors import TetherError
from tether.core.io import read_json
from tether.study.recipe import prepare_data
from tether.study.stages import Stages
from tether.study.variants import split_variant

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).parents[1] / "baselines"
MANIFEST = "manifest.json"
# the variants that start from the baseline's final model, so the shipped model is all they need
FROM_FINAL_MODEL = {"baseline", "ha_dpo", "noiseboost_dpo", "fact_rlhf"}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def recipe_record(recipe) -> dict:
    """What the trained model depends on in the recipe (the progress bar does not)."""
    return {k: v for k, v in dataclasses.asdict(recipe).items() if k != "progress_bar"}


def load_float32(source: Path, target: Path) -> None:
    """A shipped weights file (stored in float16) as float32, the dtype it was trained and is evaluated in."""
    weights = load_file(source)
    save_file(
        {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, target, {"format": "pt"}
    )


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
    record = json.loads(json.dumps(recipe_record(recipe)))
    changed = sorted(
        k for k in set(record) | set(manifest["recipe"]) if record.get(k) != manifest["recipe"].get(k)
    )
    if changed:
        return f"recipe settings {changed} differ from the shipped baseline's"
    # a decoding variant (vcd, ha_dpo+vcd) starts from the model of the variant it decodes
    earlier = sorted(v for v in preset.variants if split_variant(v)[0] not in FROM_FINAL_MODEL)
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
    stages read them); returns the model folder. It is the recipe's ``sft`` stage in the study's stage cache,
    keyed by the manifest (which holds every file's sha256), so every stage built on it records which
    baseline it was, and a recipe trained later in the same folder replaces it."""
    folder = SHIPPED / preset.shipped_baseline
    manifest = read_json(folder / MANIFEST)
    prepare_data(
        world_dir, baseline_dir / "data", recipe.existence_repeats, recipe.grounding_in_sft, recipe.seed
    )

    def install(stage_dir: Path) -> str:
        model = stage_dir / "model"
        model.mkdir(parents=True, exist_ok=True)
        for name in manifest["files"]:
            if name.endswith(".safetensors"):  # stored in float16, computed in float32 as when trained
                load_float32(folder / name, model / name)
            else:
                shutil.copyfile(folder / name, model / name)
        return str(model)

    shipped = {"shipped": preset.shipped_baseline, "code_version": manifest["code_version"]}
    Stages(baseline_dir).run("sft", [shipped, folder / MANIFEST], install)
    return baseline_dir / "sft" / "model"


def shipped_model(preset, seed, world_config, world, baseline_dir, recipe) -> str | None:
    """The shipped baseline's model installed under ``baseline_dir`` when it fits this run, else None."""
    if not preset.shipped_baseline:
        return None
    why = why_not_shipped(preset, seed, world_config, recipe)
    if why:
        logger.warning(
            "shipped baseline '%s' not used (%s): training the baseline", preset.shipped_baseline, why
        )
        return None
    logger.info("baseline: the shipped baseline '%s'", preset.shipped_baseline)
    return str(install_shipped(preset, world, baseline_dir, recipe))
