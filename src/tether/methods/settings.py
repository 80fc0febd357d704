"""Settings shared by every training command (the ``model:`` and ``train:`` sections of a recipe)."""

from dataclasses import dataclass, field

from tether.models.placement import ModelLoadSettings


@dataclass
class LoraSettings:
    """LoRA on the language model (``model.lora``); the vision tower is never adapted (the adapter's
    ``lora_target_pattern``).

    Parameters:
        r: the adapters' rank.
        alpha: their scaling numerator (scale = alpha / r).
        dropout: dropout on the adapters' input.
        target_modules: the module names adapted (by default the attention projections).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelSettings(ModelLoadSettings):
    """The model to train (the ``model:`` section of every recipe).

    Parameters:
        device: cpu or cuda (unset: this process's GPU when there is one, else the CPU). Training places the
            model through the trainer: pick one GPU with ``CUDA_VISIBLE_DEVICES``, several with ``--launcher``.
        dtype: float32, bfloat16, float16, auto (the checkpoint's own).
        attn_implementation: sdpa, eager, flash_attention_2; None: transformers' default.
        chat_template: a template file or a documented format's name; None: the checkpoint's.
        path: a local checkpoint folder (``tether models tiny`` writes one; any llava-hf / Qwen2-VL folder).
        trust_remote_code: allow the checkpoint's own code (off unless asked).
        freeze_vision: the vision tower does not train.
        freeze_projector: the projector does not train.
        freeze_llm: the language model does not train (with ``lora``, only its adapters train anyway).
        lora: LoRA on the language model (``LoraSettings``); None: no adapters.
    """

    path: str = ""
    trust_remote_code: bool = False
    freeze_vision: bool = True
    freeze_projector: bool = False
    freeze_llm: bool = False
    lora: LoraSettings | None = None


@dataclass
class TrainSettings:
    """The common ``transformers.TrainingArguments`` (the ``train:`` section); anything else goes in ``extra``.

    Parameters:
        output_dir: where checkpoints, the exported model and run.json go.
        max_steps: optimizer steps; -1: ``num_train_epochs`` decides.
        num_train_epochs: passes over the data when ``max_steps`` is -1.
        per_device_train_batch_size: examples per process per forward.
        gradient_accumulation_steps: forwards per optimizer step.
        learning_rate, weight_decay, lr_scheduler_type, max_grad_norm: the optimizer and its schedule.
        warmup_steps: steps, or a fraction of training when < 1.
        logging_steps: steps between logged losses and metrics.
        save_steps: steps between checkpoints.
        save_total_limit: checkpoints kept; None: all.
        seed: the seed of initialisation, data order and noise.
        bf16: mixed precision in bfloat16.
        gradient_checkpointing: recompute activations in the backward pass (memory for compute).
        report_to: loggers: "none", "tensorboard", "wandb".
        deepspeed: a DeepSpeed config file (see configs/); None: no DeepSpeed.
        dataloader_num_workers: processes that collate batches.
        resume: continue from the newest checkpoint-* in output_dir if there is one.
        overwrite: replace an output_dir holding a run of other settings, model or data (else it is refused).
        progress_bar: show tqdm's bar.
        extra: any other ``TrainingArguments`` keyword.
    """

    output_dir: str = "runs/train"
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: float = 0
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    report_to: list[str] = field(default_factory=lambda: ["none"])
    deepspeed: str | None = None
    dataloader_num_workers: int = 0
    resume: bool = True
    overwrite: bool = False
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)


def read_options(data, skips) -> dict:
    """How a method reads its data files: its ``data`` settings' ``skip_invalid``, ``streaming`` and
    ``images`` folder, with the run's ``skips`` (a ``SkipLog``) counting the records skipped."""
    return {"skip_invalid": data.skip_invalid, "streaming": data.streaming, "skips": skips, "images": data.images}
