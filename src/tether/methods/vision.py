"""Vision-tower pretraining by multi-label classification (stage 0 of the small-world recipe).

A linear head over the mean of the tower's last hidden states predicts which labels (e.g. object kinds,
colours) an image shows; binary cross-entropy per label. Only the vision tower and the head train. This is
what gives a tiny from-scratch tower features that the projector can then align; real checkpoints come
with a pretrained tower and skip it.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from tether.data.images import open_image
from tether.data.io import SkipLog, read_records, require_fields
from tether.errors import DataError, TetherError
from tether.methods.settings import ModelSettings, TrainSettings
from tether.models import VisionLanguageModel


@dataclass
class VisionData:
    train: list[str] = field(default_factory=list)  # JSONL of {"image": str, "labels": [str, ...]}
    images: str = "."
    skip_invalid: bool = False


@dataclass
class VisionConfig:
    model: ModelSettings = field(
        default_factory=lambda: ModelSettings(freeze_vision=False, freeze_projector=True, freeze_llm=True)
    )
    data: VisionData = field(default_factory=VisionData)
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class LabelledImage:
    image: str
    labels: list[str]


def load_labelled_images(path, skip_invalid=False, skips: SkipLog | None = None) -> list[LabelledImage]:
    out = []
    for line, raw in read_records(path, skip_invalid=skip_invalid, skips=skips):
        try:
            require_fields(raw, {"image": str, "labels": list}, path, line)
            if not all(isinstance(x, str) for x in raw["labels"]):
                raise DataError("'labels' must be a list of strings", path, line)
        except DataError as e:
            if not skip_invalid:
                raise
            if skips is not None:
                skips.add(str(e))
            continue
        out.append(LabelledImage(raw["image"], raw["labels"]))
    return out


class VisionCollator:
    def __init__(self, vlm: VisionLanguageModel, images_root, label_names: list[str]):
        self.vlm = vlm
        self.images_root = images_root
        self.index = {name: i for i, name in enumerate(label_names)}

    def __call__(self, records) -> dict:
        images = [open_image(self.images_root, r.image) for r in records]
        targets = torch.zeros(len(records), len(self.index))
        for row, record in enumerate(records):
            for label in record.labels:
                targets[row, self.index[label]] = 1.0
        return {"image_inputs": self.vlm.image_inputs(images), "targets": targets}


def vision_tower(vlm: VisionLanguageModel) -> torch.nn.Module:
    base = vlm.base_model.model
    return base.vision_tower if hasattr(base, "vision_tower") else base.visual


class VisionModule(torch.nn.Module):
    def __init__(self, vlm: VisionLanguageModel, n_labels: int):
        super().__init__()
        self.model = vlm.model
        self.vlm = vlm
        width = _tower_width(vlm)
        self.head = torch.nn.Linear(width, n_labels)

    def pooled(self, image_inputs: dict) -> torch.Tensor:
        tower = vision_tower(self.vlm)
        if "image_grid_thw" in image_inputs:  # Qwen2-VL: patch features of all images, concatenated
            hidden = tower(
                image_inputs["pixel_values"], grid_thw=image_inputs["image_grid_thw"], return_dict=True
            ).last_hidden_state
            sizes = image_inputs["image_grid_thw"].prod(-1).tolist()
            return torch.stack([chunk.mean(0) for chunk in hidden.split(sizes)])
        return tower(image_inputs["pixel_values"], return_dict=True).last_hidden_state.mean(dim=1)

    def forward(self, image_inputs, targets) -> dict:
        logits = self.head(self.pooled(image_inputs))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        exact = ((logits > 0).float() == targets).all(dim=1).float().mean()
        return {"loss": loss, "metrics": {"exact_match": exact}}


def _tower_width(vlm) -> int:
    config = vlm.base_model.config.vision_config
    return getattr(config, "embed_dim", None) or config.hidden_size


def train_vision(config: VisionConfig):
    """Pretrain the vision tower; returns the exported model folder (the head is saved beside it)."""
    from safetensors.torch import save_file

    from tether.data.io import write_json
    from tether.methods.run_record import RunTimer, write_run_record
    from tether.methods.trainer import run_training
    from tether.methods.tuning import export_model, load_for_training

    timer = RunTimer()
    if not config.data.train:
        raise TetherError("data.train lists no files")
    skips = SkipLog()
    records = [r for p in config.data.train for r in load_labelled_images(p, config.data.skip_invalid, skips)]
    label_names = sorted({label for r in records for label in r.labels})
    vlm = load_for_training(config.model)
    module = VisionModule(vlm, len(label_names))
    trainer = run_training(
        module, VisionCollator(vlm, config.data.images, label_names), records, config.train
    )
    out = Path(config.train.output_dir) / "model"
    if trainer.args.should_save:
        export_model(vlm, out)
        save_file(
            {k: v.detach().contiguous() for k, v in module.head.state_dict().items()},
            Path(config.train.output_dir) / "label_head.safetensors",
        )
        write_json(Path(config.train.output_dir) / "labels.json", label_names)
        write_run_record(
            config.train.output_dir,
            command="train vision",
            config=config,
            trainer=trainer,
            timer=timer,
            extra={"records": len(records), "labels": label_names, "skipped": skips.skipped},
        )
    return out
