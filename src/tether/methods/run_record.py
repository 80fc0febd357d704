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
    record.update(extra or {})
    path = Path(out_dir) / "run.json"
    write_json(path, record)
    return path


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
