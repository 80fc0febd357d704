"""What a training run leaves behind beside its weights: settings, provenance, curve, time, memory."""

import dataclasses
import functools
import logging
import resource
import time
from pathlib import Path

from tether.core.fingerprints import MARKER, claim_output, identify_paths
from tether.core.io import write_json
from tether.core.provenance import environment
from tether.models.placement import placement_record

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

    model = next((m for m in module.modules() if isinstance(m, PreTrainedModel)), None)
    return placement_record(model) if model is not None else None


# settings that change how a run is watched and saved, not the weights it ends with
_OPERATIONAL = ("output_dir", "overwrite", "resume", "progress_bar", "report_to", "logging_steps", "save_steps",
                "save_total_limit", "dataloader_num_workers")  # fmt: skip
# config keys that name what a run writes: never hashed (the file is made by the run itself)
_OUTPUT_KEYS = ("output", "output_dir")
# what the trainers leave in output_dir besides checkpoint-*/ and DPO's ref_logps-*.safetensors
_RUN_FILES = ("run.json", "log.jsonl", "rollouts.jsonl", "pseudo_labels.jsonl", "hacl_heads.safetensors",
              "label_head.safetensors", "labels.json")  # fmt: skip


def training_inputs(command: str, config) -> dict:
    """What a training run's weights depend on: the command and its config, with the model and data files
    it names identified by content (``tether.core.fingerprints.identify_paths``)."""
    raw = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    train = {k: v for k, v in raw.get("train", {}).items() if k not in _OPERATIONAL}
    raw = {**raw, "train": train}
    if isinstance(raw.get("data"), dict):  # data.streaming says how rows are read, not which: same weights
        raw["data"] = {k: v for k, v in raw["data"].items() if k != "streaming"}
    return {"command": command, "config": _identify(raw, identify_paths)}


def _identify(value, identify_paths):
    if isinstance(value, dict):
        return {k: v if k in _OUTPUT_KEYS else _identify(v, identify_paths) for k, v in value.items()}
    return identify_paths(value)


_PENDING: dict = {}  # output_dir -> the claim of the training run about to write there


def start_output(output_dir) -> None:
    """Record the inputs of the training run in ``output_dir`` (see ``training_run``): called by a trainer
    once its data and settings are checked, before it writes the first file there."""
    claim = _PENDING.get(str(Path(output_dir)))
    if claim is not None:
        claim.start()


def training_run(command: str, output: str = "model"):
    """Decorate ``train_<method>(config, ...)``: its ``output_dir`` records the run's inputs.

    A rerun with the same inputs resumes an interrupted run, or returns a finished run's ``output`` folder
    without training it further; other inputs are refused naming what changed, unless
    ``train.overwrite`` (``--overwrite``) removes the earlier run first."""

    def decorate(train):
        @functools.wraps(train)
        def run(config, *args, **kwargs):
            out_dir = Path(config.train.output_dir)
            produced = [
                *sorted(out_dir.glob("checkpoint-*")),
                *sorted(out_dir.glob("ref_logps-*.safetensors")),
                *(out_dir / name for name in (output, *_RUN_FILES)),
            ]
            claim = claim_output(
                out_dir / MARKER,
                training_inputs(command, config),
                produced=produced,
                overwrite=config.train.overwrite,
                what="a training run",
                overwrite_hint="--overwrite (train.overwrite=true)",
                start=False,
            )
            if claim.finished:
                logger.info("%s: this run is finished (%s); nothing to train", out_dir, out_dir / output)
                return out_dir / output
            _PENDING[str(out_dir)] = claim
            try:
                result = train(config, *args, **kwargs)
            finally:
                _PENDING.pop(str(out_dir), None)
            claim.mark_finished()
            return result

        return run

    return decorate
