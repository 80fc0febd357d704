"""The study's one stage cache: a stage runs once, and is skipped while its key matches its marker.

Every stage, the baseline recipe's (``tether.study.recipe``) and the variants' alike, runs through
``Stages.run(name, inputs, fn)`` and writes ``<root>/<name>/stage.json`` with its key, the inputs the key was
made from, its result and its timing. ``inputs`` are what the stage is built from, passed whole: the config
objects it trains or evaluates with (dataclass instances) and the files and models it reads. The key is
derived from them (``stage_key``), never from fields listed by hand, so a field added to any config changes
the key of every stage built with it:

- a dataclass counts by its class name and every field (``tether.core.config.to_dict``), nested configs
  included, except the display settings in ``NOT_IN_KEY``;
- a path (a ``Path``, or a string with a ``/`` naming an existing file or folder) inside another stage's
  folder under the same root counts by that stage's key, so a retrained model changes every stage after it and none before; any other file by
  its bytes; a folder (images) by its path; paths inside the stage's own folder (its output) by their path;
  a path under the cache's root by its path relative to the root;
- anything else by its JSON.

A rerun with the same key returns the recorded result; an interrupted stage with the same key resumes in its
folder; a stage whose key changed starts over in an emptied folder (never mixing old and new output), and
the log names the inputs that changed. ``KEY_VERSION`` joins every key: keys of version 1 (fields listed by
hand at each call site) are never taken for version 2's (docs/study.md, "Stage keys").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from tether.core.config import to_dict
from tether.core.errors import TetherError
from tether.core.fingerprints import changed_keys, fingerprint
from tether.core.io import file_sha256, write_json
from tether.methods.run_record import peak_rss_mb

logger = logging.getLogger(__name__)

MARKER = "stage.json"
KEY_VERSION = 2  # 1: fingerprints of hand-listed fields; 2: keys derived from the inputs whole
# settings that change what a run shows, never what it makes: a rerun with the progress bar on runs nothing
NOT_IN_KEY = frozenset({"progress_bar"})


class Stages:
    """Runs named stages once under ``root``: a stage whose key matches its ``stage.json`` is skipped."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.timings: dict[str, dict] = {}

    def folder(self, name: str) -> Path:
        """Where stage ``name`` writes (known before it runs, so its config can name its output folder)."""
        return self.root / name

    def run(self, name: str, inputs, fn):
        """Stage ``name``'s result: recorded when its key (from ``inputs``) is unchanged, else ``fn(folder)``
        run in an emptied folder (or the resumable folder of an interrupted run with this key)."""
        folder = self.folder(name)
        marker = folder / MARKER
        parts = key_parts(inputs, folder, self.root)
        key = fingerprint(KEY_VERSION, parts)

        done = read_marker(marker)
        if done.get("fingerprint") == key and "result" in done:
            self.timings[name] = done.get("timing", {})
            return done["result"]

        if isinstance(done.get("inputs"), list):  # name what changed: "0.fields.train.max_steps", ...
            before, after = (dict(enumerate(p)) for p in (done["inputs"], json.loads(json.dumps(parts))))
            changed = changed_keys(before, after)
            logger.info("stage %s: its inputs changed (%s), running it again", name, ", ".join(changed[:5]))
        logger.info("stage %s", name)
        start = time.perf_counter()
        start_stage(folder, key)
        result = fn(folder)
        timing = {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}
        self.timings[name] = timing
        write_json(marker, {"fingerprint": key, "inputs": parts, "result": result, "timing": timing})
        return result


def stage_key(inputs, folder, root) -> str:
    """The key of a stage writing to ``folder`` under ``root`` built from ``inputs`` (see the module
    docstring)."""
    return fingerprint(KEY_VERSION, key_parts(inputs, Path(folder), Path(root)))


def key_parts(value, folder: Path, root: Path):
    """``value`` as plain JSON data in the form its key is made from (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"config": type(value).__name__, "fields": key_parts(to_dict(value), folder, root)}
    if isinstance(value, dict):
        return {str(k): key_parts(v, folder, root) for k, v in value.items() if k not in NOT_IN_KEY}
    if isinstance(value, list | tuple):
        return [key_parts(v, folder, root) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and "/" in value and "\n" not in value):
        return _path_part(Path(value), folder, root)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _path_part(path: Path, own_folder: Path, root: Path):
    # paths under the cache's root count relative to it: a baseline folder moved as a whole keeps its keys
    name = f"<root>/{path.relative_to(root)}" if root in path.parents else str(path)
    if not path.exists() or path == own_folder or own_folder in path.parents:
        return name
    # the stage folder (under this cache's root) that made it, if any
    made_by = next((p for p in (path, *path.parents) if root in p.parents and (p / MARKER).is_file()), None)
    if made_by is not None:
        return {"path": name, "stage": read_marker(made_by / MARKER).get("fingerprint")}
    if path.is_file():
        return {"path": name, "sha256": file_sha256(path)}
    return name


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
