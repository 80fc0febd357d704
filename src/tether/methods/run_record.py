"""What a training run leaves behind beside its weights: settings, provenance, curve, time, memory."""

import dataclasses
import json
import logging
import resource
import time
from pathlib import Path

from tether.data.io import write_json
from tether.provenance import environment

logger = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class RunTimer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def write_run_record(
    out_dir, *, command: str, config, trainer=None, timer: RunTimer | None = None, extra: dict | None = None
) -> Path:
    record = {
        "command": command,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
        "environment": environment(),
        "wall_seconds": timer.seconds if timer else None,
        "peak_rss_mb": peak_rss_mb(),
    }
    if trainer is not None:
        record["log_history"] = trainer.state.log_history
        record["global_step"] = trainer.state.global_step
        record["world_size"] = trainer.args.world_size
        record["model_placement"] = trained_model_placement(trainer.accelerator.unwrap_model(trainer.model))
    record.update(extra or {})
    path = Path(out_dir) / "run.json"
    write_json(path, record)
    return path


def trained_model_placement(module) -> dict | None:
    """Device, dtype and attention of the Hugging Face model inside a method module (where it trained)."""
    from transformers import PreTrainedModel

    from tether.models.placement import placement_record

    model = next((m for m in module.modules() if isinstance(m, PreTrainedModel)), None)
    return placement_record(model) if model is not None else None


def fingerprint(*parts) -> str:
    """A cached stage's key: a file path among ``parts`` counts by its bytes, anything else by its JSON."""
    import hashlib

    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_file():
            digest.update(part.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def start_stage(folder, fingerprint: str) -> None:
    """Prepare a cached stage's folder: an interrupted run of the *same* settings keeps its checkpoints
    (training resumes), one of other settings is removed so that it cannot be resumed by mistake."""
    import shutil

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
