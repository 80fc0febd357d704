"""Vision-tower pretraining (stage 0 of the small-world recipe): image-level or dense multi-label.

- ``image``: a linear head over the max of the tower's last hidden states predicts which labels (object kinds,
  colours) the image shows; binary cross-entropy per label.
- ``dense``: records also give labelled regions (``bbox`` in image pixels); a linear head on every patch
  predicts the labels of the regions that contain the patch centre. This is the supervision a projector
  needs (what is where), and a from-scratch tower learns it several times faster than image-level labels.

Only the vision tower and the head train. Real checkpoints come with a pretrained tower and skip this.
Dense supervision needs a tower with a regular patch grid (CLIP/SigLIP, as in LLaVA).
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tether.core.errors import DataError, TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog, parse_records, require_fields, write_json
from tether.methods.run_record import RunTimer, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.trainer import MethodRun, load_records, run_method
from tether.methods.tuning import export_model
from tether.methods.vision_loss import multilabel_loss
from tether.models import VisionLanguageModel


@dataclass
class VisionData:
    """The ``data:`` section of a vision-pretraining recipe.

    Parameters:
        train: JSONL of {"image": str, "labels": [str, ...], "regions": [{"bbox": [x0, y0, x1, y1],
            "labels": [...]}]} ("regions" needed for the dense objective only).
        images: the folder that image paths are relative to.
        skip_invalid: skip (and count) bad records instead of stopping at the first.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
    """

    train: list[str] = field(default_factory=list)
    images: str = "."
    skip_invalid: bool = False
    streaming: bool = False


@dataclass
class VisionConfig:
    """``tether train vision``: pretrain the vision tower by multi-label classification.

    Parameters:
        model: the model; by default only the vision tower trains.
        data: labelled images (``VisionData``).
        train: ``TrainSettings``.
        objective: "image" (labels of the whole image) or "dense" (labels of the regions around each patch).
    """

    model: ModelSettings = field(
        default_factory=lambda: ModelSettings(freeze_vision=False, freeze_projector=True, freeze_llm=True)
    )
    data: VisionData = field(default_factory=VisionData)
    train: TrainSettings = field(default_factory=TrainSettings)
    objective: str = "image"


@dataclass
class LabelledImage:
    image: str
    labels: list[str]
    regions: list[tuple[list[float], list[str]]] = field(default_factory=list)


def load_labelled_images(
    path, skip_invalid: bool = False, skips: SkipLog | None = None, images=None, streaming: bool = False
) -> list[LabelledImage]:
    return parse_records(
        path, _parse, skip_invalid=skip_invalid, skips=skips, images=images, streaming=streaming
    )


def _parse(raw: dict, path, line: int) -> LabelledImage:
    require_fields(raw, {"image": str, "labels": list}, path, line)
    if not all(isinstance(x, str) for x in raw["labels"]):
        raise DataError("'labels' must be a list of strings", path, line)
    regions = []
    for region in raw.get("regions", []):
        bbox, labels = region.get("bbox"), region.get("labels")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise DataError("a region needs 'bbox': [x0, y0, x1, y1]", path, line)
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise DataError("a region needs 'labels': [str, ...]", path, line)
        regions.append((bbox, labels))
    return LabelledImage(raw["image"], raw["labels"], regions)


class VisionCollator:
    def __init__(self, vlm: VisionLanguageModel, images_root, label_names: list[str], objective: str):
        self.vlm = vlm
        self.images_root = images_root
        self.index = {name: i for i, name in enumerate(label_names)}
        self.objective = objective

    def __call__(self, records) -> dict:
        images = [open_image(self.images_root, r.image) for r in records]
        image_inputs = self.vlm.image_inputs(images)
        if self.objective == "dense":
            side = image_inputs["pixel_values"].shape[-1]
            grid = side // self.vlm.base_model.config.vision_config.patch_size
            targets = torch.stack(
                [self._patch_targets(r, im.width, side, grid) for r, im in zip(records, images)]
            )
        else:
            targets = torch.zeros(len(records), len(self.index))
            for row, record in enumerate(records):
                targets[row, [self.index[label] for label in record.labels]] = 1.0
        return {"image_inputs": image_inputs, "targets": targets}

    def _patch_targets(self, record: LabelledImage, width: int, side: int, grid: int) -> torch.Tensor:
        """[grid*grid, labels]: labels of the regions containing each patch centre (row-major patches)."""
        targets = torch.zeros(grid * grid, len(self.index))
        centres = (torch.arange(grid) + 0.5) * (width / grid)  # in original-image pixels
        for bbox, labels in record.regions:
            inside_x = (centres >= bbox[0]) & (centres < bbox[2])
            inside_y = (centres >= bbox[1]) & (centres < bbox[3])
            patches = (inside_y[:, None] & inside_x[None, :]).flatten()
            for label in labels:
                targets[patches, self.index[label]] = 1.0
        return targets


class VisionModule(torch.nn.Module):
    def __init__(self, vlm: VisionLanguageModel, n_labels: int, objective: str = "image"):
        super().__init__()
        if objective not in ("image", "dense"):
            raise TetherError(f"unknown vision objective '{objective}' (image or dense)")
        if objective == "dense" and not vlm.vision_patch_grid:
            raise TetherError(
                f"the dense objective needs a tower with a regular patch grid (LLaVA's); {vlm.arch}'s has none"
            )
        self.model = vlm.model
        self.vlm = vlm
        self.objective = objective
        config = vlm.base_model.config.vision_config
        self.head = torch.nn.Linear(getattr(config, "embed_dim", None) or config.hidden_size, n_labels)

    def patch_features(self, image_inputs: dict) -> torch.Tensor:
        tower = self.vlm.vision_tower
        if "image_grid_thw" in image_inputs:  # Qwen2-VL: patch features of all images, concatenated
            return tower(
                image_inputs["pixel_values"], grid_thw=image_inputs["image_grid_thw"], return_dict=True
            ).last_hidden_state
        hidden = tower(image_inputs["pixel_values"], return_dict=True).last_hidden_state
        n_patches = (image_inputs["pixel_values"].shape[-1] // tower.config.patch_size) ** 2
        return hidden[:, -n_patches:]  # drop the class token where the tower has one

    def forward(self, image_inputs, targets) -> dict:
        features = self.patch_features(image_inputs)
        # the residual stream of a pre-norm tower is unnormalised; the head reads it normalised, as the
        # projector's consumers (the LLM's RMSNorm) will
        features = F.layer_norm(features, features.shape[-1:])
        if self.objective == "dense":
            logits = self.head(features)
        elif "image_grid_thw" in image_inputs:
            sizes = image_inputs["image_grid_thw"].prod(-1).tolist()
            logits = self.head(torch.stack([chunk.amax(0) for chunk in features.split(sizes)]))
        else:
            # max over patches: "is it anywhere in the image" is a max, not a mean
            logits = self.head(features.amax(dim=1))
        loss, metrics = multilabel_loss(logits, targets)
        return {"loss": loss, "metrics": metrics}


@training_run("train vision")
def train_vision(config: VisionConfig) -> Path:
    """Pretrain the vision tower; returns the exported model folder (the head is saved beside it)."""
    timer, skips = RunTimer(), SkipLog()
    if not config.data.train:
        raise TetherError("data.train lists no files")
    records = load_records(config.data.train, load_labelled_images, **read_options(config.data, skips))
    skips.require(records, "no labelled images to train on")
    label_names = sorted(
        {label for r in records for label in r.labels}
        | {label for r in records for _, labels in r.regions for label in labels}
    )

    def build(vlm: VisionLanguageModel, perturbation) -> MethodRun:
        module = VisionModule(vlm, len(label_names), config.objective)

        def save(trainer, out: Path) -> None:
            export_model(vlm, out)
            head = {k: v.detach().contiguous() for k, v in module.head.state_dict().items()}
            save_file(head, Path(config.train.output_dir) / "label_head.safetensors")
            write_json(Path(config.train.output_dir) / "labels.json", label_names)

        collator = VisionCollator(vlm, config.data.images, label_names, config.objective)
        return MethodRun(module, collator, records, save=save)

    record = {"records": len(records), "labels": label_names}
    return run_method(config, "train vision", build, timer=timer, skips=skips, record=record)
