"""The study's stage cache: a stage runs once, and is skipped while its fingerprint matches its marker.

Every stage writes ``<root>/<name>/stage.json`` with the fingerprint of what it depends on (settings, the
models and data files it reads) and its result. A rerun with the same fingerprint returns the recorded
result; an interrupted stage of the same settings resumes in its folder, one of other settings starts over.
The baseline recipe's stages (``tether.study.recipe``) and the variants' stages keep their markers with the
same helpers.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.fingerprints import fingerprint as stage_fingerprint
from tether.core.io import write_json
from tether.methods.run_record import peak_rss_mb

logger = logging.getLogger(__name__)


class Stages:
    """Runs named stages once: a stage whose fingerprint matches its ``stage.json`` is skipped."""

    def __init__(self, root: Path):
        self.root = root
        self.timings: dict[str, dict] = {}

    def run(self, name: str, fingerprint_parts, fn):
        folder = self.root / name
        marker = folder / "stage.json"
        fingerprint = stage_fingerprint(*fingerprint_parts)

        done = read_marker(marker)
        if done.get("fingerprint") == fingerprint and "result" in done:
            self.timings[name] = done.get("timing", {})
            return done["result"]

        logger.info("stage %s", name)
        start = time.perf_counter()
        start_stage(folder, fingerprint)
        result = fn(folder)
        timing = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}
        self.timings[name] = timing
        write_json(marker, {"fingerprint": fingerprint, "result": result, "timing": timing})
        return result


def start_stage(folder, fingerprint: str) -> None:
    """Prepare a cached stage's folder: an interrupted run of the *same* settings keeps its checkpoints
    (training resumes), one of other settings is removed so that it cannot be resumed by mistake."""
    folder = Path(folder)
    started = folder / "started.json"
    if folder.exists() and read_marker(started).get("fingerprint") != fingerprint:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(started, {"fingerprint": fingerprint})


def read_marker(path) -> dict:
    """A stage's JSON marker (``stage.json``, ``started.json``), or ``{}`` when missing or damaged.

    A damaged marker is reported and treated as absent, so the stage runs again instead of trusting it.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(marker, dict):
            return marker
    except (ValueError, UnicodeDecodeError):
        pass
    logger.warning("%s: damaged stage marker; the stage runs again", path)
    return {}


def model_stamp(model: str) -> str:
    """What a model folder's fingerprints count: the ``stage.json`` of the stage that made it (its own
    fingerprint, so a retrained model changes every stage after it), or its path where it has none."""
    marker = Path(model).parent / "stage.json"
    return marker.read_text() if marker.is_file() else model


def refuse_moved(seed_dir: Path, world: Path) -> None:
    """Stage fingerprints and results hold the paths the stages were made under. Reached by another path
    (a moved folder, another working directory), every stage would look changed, and rerunning it would
    delete what it had trained: refuse instead."""
    made = read_marker(seed_dir / "world_build" / "stage.json").get("result")
    if made and made != str(world):
        raise TetherError(
            f"{seed_dir}: its stages were made as {Path(made).parent}, and a rerun under another path would "
            "retrain them and delete what they trained; pass --out exactly as that run did (same path, same "
            "working directory), or a fresh --out"
        )
