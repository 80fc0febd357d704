"""What an output was made from, and the rule that runs never mix.

Every output a command can resume into (an evaluation folder, a training ``output_dir``, a pairs or negatives
file) records the inputs that produced it in a marker: the model (path and a hash of its files), data files
(path and content hash), mode, decoding, judge and the settings that change the result. A rerun with the same
inputs resumes, or does nothing when the output is finished; a rerun with other inputs is refused with one
line naming what changed, unless the user passes ``--overwrite``, which removes the old output first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.hf_dataset import is_dataset_source
from tether.core.io import file_sha256, is_special_file, read_json, write_json

logger = logging.getLogger(__name__)

MARKER = "fingerprint.json"


def fingerprint(*parts) -> str:
    """A cached stage's key: a file path among ``parts`` counts by its bytes, anything else by its JSON."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_file():
            digest.update(part.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


_MODEL_DIGESTS: dict[tuple, str] = {}


def model_digest(model_dir) -> str:
    """SHA-256 over the files of a checkpoint folder (names and contents: weights, config, tokenizer).

    Cached per process by the files' sizes and modification times: a study evaluates one model many times."""
    model_dir = Path(model_dir)
    files = sorted(p for p in model_dir.iterdir() if p.is_file())
    key = (str(model_dir.resolve()),) + tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _MODEL_DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        _MODEL_DIGESTS[key] = digest.hexdigest()
    return _MODEL_DIGESTS[key]


def model_identity(model_path) -> dict | None:
    """``{"path", "sha256"}`` of a checkpoint folder (``sha256`` None where the folder is not local)."""
    if model_path is None:
        return None
    path = Path(model_path)
    return {"path": str(model_path), "sha256": model_digest(path) if path.is_dir() else None}


def file_identity(path) -> dict | None:
    """``{"path", "sha256"}`` of a data file (a pipe is read once and hashed; a folder hashes to None)."""
    if path is None:
        return None
    if isinstance(path, list | tuple):  # several data files (e.g. every POPE split in one run)
        return file_identity(path[0]) if len(path) == 1 else [file_identity(one) for one in path]
    return {"path": str(path), "sha256": file_sha256(path)}


def identify_paths(value):
    """``value`` (a config as plain data) with each string that names a local file or checkpoint folder
    replaced by its identity, so that a changed file changes the fingerprint. Other folders (image roots,
    output folders) count by their path: hashing every image of a dataset at each start costs too much."""
    if isinstance(value, dict):
        return {key: identify_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [identify_paths(item) for item in value]
    if isinstance(value, str) and value and "\n" not in value and len(value) < 4096:
        path = Path(value)
        try:
            if path.is_file():
                return file_identity(path)
            if path.is_dir() and ((path / "config.json").is_file() or any(path.glob("*.safetensors"))):
                return model_identity(path)
            if path.is_dir() and is_dataset_source(path):  # a save_to_disk dataset: its files by content
                return model_identity(path)
        except OSError:
            pass
    return value


def changed_keys(before, after, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two input records (nested mappings compared key by key)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after), key=str):
            out += changed_keys(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if before == after else [prefix or "inputs"]


def _describe(keys: list[str], before: dict, after: dict) -> str:
    def value(record, dotted):
        for part in dotted.split("."):
            record = record.get(part) if isinstance(record, dict) else None
        if isinstance(record, dict) and set(record) == {"path", "sha256"}:  # a file: its name and hash
            return f"{Path(record['path']).name}@{(record['sha256'] or 'none')[:8]}"
        text = json.dumps(record, default=str)
        return text if len(text) <= 40 else text[:37] + "..."

    shown = [f"{k} ({value(before, k)} -> {value(after, k)})" for k in keys[:3]]
    return ", ".join(shown) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain process): the one that writes shared markers."""
    return int(os.environ.get("RANK", "0")) == 0


class OutputClaim:
    """An output claimed for a run: ``marker`` holds its inputs; ``finished`` says a run completed into it.

    ``start()`` removes what ``--overwrite`` replaces and writes the marker; it is called before the run
    writes its first output (for training: once data and settings have been checked, so that a refused
    config leaves no folder behind)."""

    def __init__(self, marker: Path, inputs: dict, fresh: bool, finished: bool, replaced: list[Path]):
        self.marker, self.inputs, self.fresh, self.finished = marker, inputs, fresh, finished
        self.replaced = replaced
        self.started = not fresh

    def record(self, finished: bool) -> dict:
        return {"fingerprint": fingerprint(self.inputs), "inputs": self.inputs, "finished": finished}

    def start(self) -> None:
        if self.started:
            return
        if is_main_process():
            for path in self.replaced:
                logger.info("--overwrite: removing %s", path)
                if path.is_symlink():  # the link stays, what it points to is emptied
                    if path.is_file():
                        path.write_bytes(b"")
                elif path.is_dir():
                    shutil.rmtree(path)
                elif not is_special_file(path):
                    path.unlink()
            write_json(self.marker, self.record(finished=False))
        self.started = True

    def mark_finished(self, **extra) -> None:
        self.start()
        if is_main_process():
            write_json(self.marker, {**self.record(finished=True), **extra})
        self.finished = True


def claim_output(
    marker,
    inputs: dict,
    *,
    produced: Iterable[Path],
    overwrite: bool = False,
    what: str = "output",
    overwrite_hint: str = "--overwrite",
    start: bool = True,
    output=None,
) -> OutputClaim:
    """Check an output's recorded inputs against this run's ``inputs`` and (with ``start``) record them.

    ``produced``: the files and folders a run leaves there (checked for output made without a marker, and
    removed by ``overwrite``). Same inputs: the claim says whether the earlier run finished (the caller then
    does nothing) or not (it resumes). Other inputs, or output without a marker: a ``TetherError`` naming the
    difference, unless ``overwrite``, which removes the produced files and starts fresh. ``output`` names
    the output in messages (default: the marker's folder).
    """
    marker = Path(marker)
    inputs = json.loads(json.dumps(inputs, default=str))  # plain JSON, as it will read back
    existing = [p for p in map(Path, produced) if p.exists()]  # a dangling symlink holds nothing yet
    recorded = {}
    if marker.is_file():
        try:
            recorded = read_json(marker)
        except TetherError:
            recorded = {}
        if not isinstance(recorded, dict):
            recorded = {}
    if recorded.get("fingerprint") == fingerprint(inputs) and recorded.get("inputs") == inputs:
        return OutputClaim(marker, inputs, False, bool(recorded.get("finished")), [])
    if existing and not overwrite:  # a marker alone (a run stopped before its first output) holds nothing
        if recorded.get("inputs"):
            keys = changed_keys(recorded["inputs"], inputs)
            reason = f"was made with other {_describe(keys, recorded['inputs'], inputs)}"
        else:
            reason = f"holds {what} without a record of what made it ({existing[0].name})"
        raise TetherError(
            f"{output or marker.parent}: {reason}; "
            f"pass {overwrite_hint} to replace it, or choose another output"
        )
    claim = OutputClaim(marker, inputs, True, False, existing)
    if start:
        claim.start()
    return claim
