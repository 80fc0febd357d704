"""One trainer infrastructure under every method: ``transformers.Trainer`` around a method module.

A method is an ``nn.Module`` whose ``forward(**batch)`` returns ``{"loss": tensor, "metrics": {name: tensor}}``
(the module holds the VLM and any heads it trains), plus a data collator that turns records into that batch.
Running everything through one module forward is what makes DDP, DeepSpeed and FSDP wrap the whole method,
heads included. The Trainer brings gradient accumulation, schedulers, mixed precision, logging
(tensorboard/wandb), checkpointing and resume.

Checkpoints hold only the parameters that train (LoRA adapters, projector, heads...), as safetensors: small,
and safe to load.
"""

import contextlib
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerState, TrainingArguments

from tether.core.errors import TetherError
from tether.core.io import SkipLog
from tether.methods.noise import VisualNoise, training_noise
from tether.methods.run_record import RunTimer, start_output, write_run_record
from tether.methods.settings import TrainSettings
from tether.methods.tuning import export_model, load_for_training
from tether.models import VisionLanguageModel

logger = logging.getLogger(__name__)

TRAINABLE_WEIGHTS = "trainable.safetensors"


def training_arguments(
    settings: TrainSettings, model_device: str | None = None, **overrides
) -> TrainingArguments:
    """``TrainingArguments`` of ``settings``; ``model_device`` is the recipe's ``model.device`` (cpu forces
    the CPU even where a GPU is visible)."""
    if "tensorboard" in settings.report_to or "all" in settings.report_to:
        require_tensorboard()
    on_cpu = model_device == "cpu" or not torch.cuda.is_available()
    deepspeed = uses_deepspeed(settings)
    kwargs = dict(
        output_dir=settings.output_dir,
        max_steps=settings.max_steps,
        num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type=settings.lr_scheduler_type,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=settings.bf16,
        # not the Trainer's activation_checkpointing: it calls the method module, which is no HF model
        # (``enable_activation_checkpointing`` reaches the models inside)
        dataloader_pin_memory=torch.cuda.is_available(),
        # without it, accelerate does not set up multi-process CPU (gloo) training under torchrun; but it
        # also switches DeepSpeed off, which runs on the CPU through its own accelerator (DS_ACCELERATOR=cpu)
        use_cpu=on_cpu and not deepspeed,
        # DeepSpeed on the CPU: accelerate counts one process unless it is told the backend
        ddp_backend="gloo" if on_cpu and deepspeed else None,
        report_to=settings.report_to,
        deepspeed=settings.deepspeed,
        dataloader_num_workers=settings.dataloader_num_workers,
        disable_tqdm=not settings.progress_bar,
        remove_unused_columns=False,  # batches are built by tether's collators, not from dataset columns
        # frozen vision-tower layers get no gradient; DDP must be told or it waits for them forever
        ddp_find_unused_parameters=True,
    )
    kwargs.update(settings.extra)
    kwargs.update(overrides)
    refuse_fsdp_on_cpu(on_cpu, trainer_fsdp=kwargs.get("fsdp"))
    return TrainingArguments(**kwargs)


def uses_deepspeed(settings: TrainSettings) -> bool:
    """Whether this run trains under DeepSpeed: ``train.deepspeed`` or ``accelerate launch`` with a DeepSpeed
    config (which sets ``ACCELERATE_USE_DEEPSPEED``)."""
    return bool(settings.deepspeed) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def refuse_fsdp_on_cpu(on_cpu: bool, trainer_fsdp=None) -> None:
    """FSDP runs on GPUs only: on the CPU accelerate (1.16) keeps its multi-CPU mode, in which an FSDP config
    (from ``accelerate launch`` or ``TrainingArguments.fsdp``, here ``trainer_fsdp``) is dropped and the
    model silently trains under DDP (it switches to FSDP only for GPU-like devices). torch's FSDP2 itself
    trains on CPUs over gloo: scripts/fsdp_cpu_probe.py shows each level, to re-check on a new accelerate."""
    launched = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if on_cpu and (launched or trainer_fsdp not in (None, False, "", [])):
        raise TetherError(
            "FSDP needs GPUs: on the CPU accelerate would train with DDP instead of the FSDP config; "
            "use configs/accelerate/ddp_cpu.yaml or a DeepSpeed config (DS_ACCELERATOR=cpu)"
        )


def require_tensorboard() -> None:
    """``report_to: [tensorboard]`` needs the package; say which extra brings it instead of a traceback."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        raise TetherError(
            "train.report_to asks for tensorboard, which is not installed: pip install 'tether[tensorboard]'"
        )


class TetherTrainer(Trainer):
    """``Trainer`` for method modules: logs their metrics and checkpoints only trainable parameters."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._metric_sums: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        for name, value in outputs.get("metrics", {}).items():
            value = value.detach().float().mean() if torch.is_tensor(value) else torch.tensor(float(value))
            self._metric_sums[name].append(
                self.accelerator.gather_for_metrics(value.to(self.args.device)).mean().item()
            )
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add the method's metrics averaged since the last one
            for name, values in self._metric_sums.items():
                if values:
                    logs[name] = sum(values) / len(values)
            self._metric_sums.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = Path(output_dir or self.args.output_dir)
        module = self.accelerator.unwrap_model(self.model)
        # gathering ZeRO-3 shards is a collective: every rank takes part, only the main one writes
        if not self.args.should_save and not is_zero3_partitioned(module):
            return
        state = trainable_state(module)
        if self.args.should_save:
            output_dir.mkdir(parents=True, exist_ok=True)
            save_file(state, output_dir / TRAINABLE_WEIGHTS)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_trainable_state(model or self.model, Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS)

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) copies of the trainable parameters; clones, since safetensors refuses shared tensors."""
    state = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if hasattr(param, "ds_id"):  # DeepSpeed ZeRO-3: each rank holds a shard and `param` itself is empty
            state[name] = _gathered_zero3(param)
            continue
        tensor = param.full_tensor() if hasattr(param, "full_tensor") else param  # FSDP2 shards are DTensors
        state[name] = tensor.detach().cpu().clone().contiguous()
    return state


def is_zero3_partitioned(module: torch.nn.Module) -> bool:
    """Whether DeepSpeed ZeRO-3 has partitioned the module's parameters (it tags each with ``ds_id``)."""
    return any(hasattr(param, "ds_id") for param in module.parameters())


def gather_full_parameters(module: torch.nn.Module) -> None:
    """After training under DeepSpeed ZeRO-3, give every parameter of ``module`` its full value again on
    every rank (each held only a shard), so the main rank exports whole weights and heads.

    A collective: every rank calls it. The parameters stay gathered: training is over.
    """
    params = [param for param in module.parameters() if hasattr(param, "ds_id")]
    if params:
        params[0].all_gather(param_list=params)  # what deepspeed.zero.GatheredParameters does on entry


def _gathered_zero3(param: torch.nn.Parameter) -> torch.Tensor:
    """The full value of a ZeRO-3 partitioned parameter (a collective: every rank must call it)."""
    import deepspeed  # only reachable under DeepSpeed, which set `ds_id`

    with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
        return param.detach().cpu().clone().contiguous()


def load_trainable_state(module: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise TetherError(f"{path}: checkpoint has no {TRAINABLE_WEIGHTS}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise TetherError(
            f"{path}: damaged checkpoint weights ({e}); delete this checkpoint folder"
        ) from None
    known = dict(module.named_parameters())
    unknown = sorted(set(state) - set(known))
    if unknown:
        raise TetherError(
            f"{path}: parameters not in this model: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
        )
    with torch.no_grad():
        for name, value in state.items():
            known[name].copy_(value.to(known[name].device, known[name].dtype))


def run_training(
    module,
    collator,
    dataset,
    settings: TrainSettings,
    callbacks=None,
    model_device: str | None = None,
    **argument_overrides,
) -> TetherTrainer:
    """Train ``module`` on ``dataset``; resume from the newest checkpoint in the output folder if asked.

    ``model_device`` is the recipe's ``model.device`` (see ``training_arguments``)."""
    if len(dataset) == 0:
        raise TetherError("training dataset is empty")
    args = training_arguments(settings, model_device, **argument_overrides)
    expected = os.environ.get("TETHER_EXPECTED_WORLD_SIZE")
    if expected and int(expected) != args.world_size:
        # `accelerate launch --cpu --num_processes 2` has been seen to start one process silently
        raise TetherError(f"launched for {expected} processes but training runs in {args.world_size}")
    if settings.gradient_checkpointing:
        enable_activation_checkpointing(module)
    start_output(settings.output_dir)
    trainer = TetherTrainer(
        model=module, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks
    )
    resume = None
    if settings.resume and os.path.isdir(settings.output_dir):
        resume = last_complete_checkpoint(settings.output_dir, "trainer_state.json")
        if resume:
            logger.info("resuming from %s", resume)
    if resume and _reached_max_steps(resume, args.max_steps):
        # the run was stopped after its last checkpoint: the Trainer would take one more step past max_steps
        # (mid-epoch), so the checkpoint's weights and state are taken as they are
        logger.info("%s reached max_steps=%d: loaded, not trained further", resume, args.max_steps)
        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        return trainer
    trainer.train(resume_from_checkpoint=resume)
    gather_full_parameters(module)
    return trainer


def enable_activation_checkpointing(module: torch.nn.Module) -> int:
    """Recompute, in the backward pass, the activations of every Hugging Face model in ``module`` that trains.

    ``train.gradient_checkpointing``: memory for compute. Each outermost ``PreTrainedModel`` with a trainable
    parameter is switched to non-reentrant checkpointing (transformers' default), which is correct with DDP's
    ``find_unused_parameters`` and with frozen layers; transformers also hooks the input embeddings to require
    grad, which LoRA needs. Frozen models (PPO's reference, a frozen reward model) keep their activations: they
    run without gradients anyway. Returns how many models were switched.
    """
    from transformers import PreTrainedModel

    inside_enabled: set[int] = set()
    enabled = 0
    for sub in module.modules():
        if id(sub) in inside_enabled or not isinstance(sub, PreTrainedModel):
            continue
        if not any(param.requires_grad for param in sub.parameters()):
            continue
        if not sub.supports_gradient_checkpointing:
            raise TetherError(f"train.gradient_checkpointing: {type(sub).__name__} does not support it")
        sub.activation_checkpointing_enable()
        inside_enabled.update(id(m) for m in sub.modules())
        enabled += 1
    if enabled == 0:
        raise TetherError("train.gradient_checkpointing: no trainable Hugging Face model in this method")
    return enabled


@contextlib.contextmanager
def checkpointing_in_eval_mode(module: torch.nn.Module):
    """Let checkpointed layers recompute while ``module`` stays in eval mode (PPO trains in eval mode).

    transformers checkpoints a layer only when ``layer.training``; flipping that flag on the checkpointed
    layers alone keeps dropout (held by their child modules) switched off.
    """
    layers = [m for m in module.modules() if getattr(m, "gradient_checkpointing", False) is True]
    modes = [layer.training for layer in layers]
    for layer in layers:
        layer.training = True
    try:
        yield
    finally:
        for layer, mode in zip(layers, modes):
            layer.training = mode


def _reached_max_steps(checkpoint: str, max_steps: int) -> bool:
    if max_steps <= 0:
        return False
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return state.get("global_step", 0) >= max_steps


def last_complete_checkpoint(output_dir, last_file: str) -> str | None:
    """The newest ``checkpoint-N`` folder that holds ``last_file`` (written last, so the save finished).

    A run killed while writing a checkpoint leaves a folder without it; resuming from that folder would
    fail (or load half a state), so it is skipped with a warning and the one before it is used.
    """
    from transformers.trainer_utils import sort_checkpoints

    for folder in reversed(sort_checkpoints(str(output_dir))):
        marker = Path(folder) / last_file
        try:
            if marker.suffix != ".json" or isinstance(json.loads(marker.read_text()), dict):
                return folder
        except (OSError, ValueError):
            pass
        logger.warning(
            "%s: incomplete checkpoint (no valid %s; run killed while saving?), skipped", folder, last_file
        )
    return None


def loss_history(trainer: Trainer) -> list[dict]:
    """The logged training records (step, loss, metrics), for reports and curves."""
    return [r for r in trainer.state.log_history if "loss" in r and not math.isnan(r["loss"])]


# ---- the scaffold every Trainer-based method shares --------------------------------------------------------


@dataclass
class MethodRun:
    """What a method builds around its loaded model (``run_method``'s ``build``)."""

    module: torch.nn.Module  # forward(**batch) -> {"loss", "metrics"}
    collator: Callable  # records -> the module's keyword arguments
    dataset: Sequence  # what the collator takes, one item per example
    record: dict = field(default_factory=dict)  # run.json entries known before training
    # writes what the run produced into the output folder and returns more run.json entries; default: the
    # exported model (LoRA merged)
    save: Callable[[TetherTrainer, Path], dict | None] | None = None


def run_method(
    config,
    command: str,
    build: Callable[[VisionLanguageModel, VisualNoise | None], MethodRun],
    *,
    timer: RunTimer,
    skips: SkipLog,
    record: dict | None = None,
    output: str = "model",
) -> Path:
    """Seed, load ``config.model`` for training, build the method (with ``config.noiseboost``'s noise where the
    config has one), train, save ``<train.output_dir>/<output>`` and write its ``run.json``.

    ``config`` has ``model`` (``ModelSettings``), ``train`` (``TrainSettings``) and optionally ``noiseboost``;
    ``record`` holds run.json entries from loading the data (record counts); ``skips`` the records skipped.
    Returns the output folder (written by the main process)."""
    torch.manual_seed(config.train.seed)  # LoRA and head initialisation happen before the Trainer seeds
    vlm = load_for_training(config.model)
    perturbation, callbacks = training_noise(getattr(config, "noiseboost", None))
    method = build(vlm, perturbation)
    trainer = run_training(
        method.module,
        method.collator,
        method.dataset,
        config.train,
        callbacks=callbacks,
        model_device=config.model.device,
    )
    out = Path(config.train.output_dir) / output
    if trainer.args.should_save:
        saved = method.save(trainer, out) if method.save is not None else export_model(vlm, out)
        extra = {**(record or {}), "skipped": skips.skipped, "skip_reasons": skips.reasons, **method.record}
        write_run_record(
            config.train.output_dir,
            command=command,
            config=config,
            trainer=trainer,
            timer=timer,
            extra={**extra, **(saved or {})},
        )
    skips.report()
    return out


def load_records(files: Sequence[str], read: Callable[..., list], **options) -> list:
    """Every record of ``files``, in order, each file read by ``read(path, **options)``."""
    return [record for path in files for record in read(path, **options)]


def accelerator_for(model, train):
    """The ``Accelerator`` of a loop tether runs itself (PPO), for ``model`` (``ModelSettings``) and ``train``
    (``TrainSettings``): on the CPU, under torchrun, DDP or DeepSpeed as launched; FSDP on the CPU refused."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    on_cpu = model.device == "cpu" or not torch.cuda.is_available()
    refuse_fsdp_on_cpu(on_cpu)
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"  # accelerate launch
    # cpu=True on CPU machines: without it accelerate ignores torchrun's WORLD_SIZE and runs N copies
    # alone; but it also switches DeepSpeed off, which runs on the CPU through DS_ACCELERATOR=cpu and
    # there needs the gloo backend named, or accelerate counts one process
    accelerator = Accelerator(
        cpu=on_cpu and not deepspeed,
        mixed_precision="bf16" if train.bf16 else "no",
        kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")] if on_cpu and deepspeed else None,
    )
    expected = os.environ.get("TETHER_EXPECTED_WORLD_SIZE")  # set by `tether train --launcher`
    if expected and int(expected) != accelerator.num_processes:
        raise TetherError(
            f"launched for {expected} processes but PPO runs in {accelerator.num_processes}"
        )
    return accelerator
