"""Settings shared by every training command (the ``model:`` and ``train:`` sections of a recipe)."""

from dataclasses import dataclass, field

from tether.models.placement import ModelLoadSettings


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # attention projections of the language model; the vision tower is never adapted by default
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelSettings(ModelLoadSettings):
    """The model to train; ``device``, ``dtype`` and ``attn_implementation`` come from ``ModelLoadSettings``.

    Training places the model through the trainer: ``device`` is ``cpu`` or ``cuda`` (unset: this process's
    GPU when there is one, else the CPU); pick one GPU with ``CUDA_VISIBLE_DEVICES``, several with
    ``--launcher``.
    """

    path: str = (
        ""  # a local checkpoint folder (tether models tiny writes one; any llava-hf / Qwen2-VL folder)
    )
    trust_remote_code: bool = False
    freeze_vision: bool = True
    freeze_projector: bool = False
    freeze_llm: bool = False
    lora: LoraSettings | None = None


@dataclass
class TrainSettings:
    """The common ``transformers.TrainingArguments``; anything else goes in ``extra``."""

    output_dir: str = "runs/train"
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: float = 0  # steps, or a fraction of training when < 1
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    report_to: list[str] = field(default_factory=lambda: ["none"])  # "tensorboard", "wandb"
    deepspeed: str | None = None
    dataloader_num_workers: int = 0
    resume: bool = True  # continue from the newest checkpoint-* in output_dir if there is one
    # an output_dir holding a run of other settings, model or data is refused unless this replaces it
    overwrite: bool = False
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)
