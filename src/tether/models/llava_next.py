"""LLaVA-NeXT and LLaVA-OneVision: anyres tiles (a base view plus a grid of crops) → MLP projector → LLM.

The placeholder expands to one ``<image>`` per visual token, the count found the way the model packs the
features: the base view's patches, then the crop grid's patches with the letterbox padding removed, plus
one newline token at the end of every row of the grid (OneVision then pools a grid larger than
``anyres_max_N`` allows). The newline tokens are a learned embedding appended after the projector, so
NoiseBoost's hook on the projector perturbs every visual token but those row separators.
"""

import math

import torch
from transformers.image_processing_utils import select_best_resolution

from tether.models.adapter import VisionLanguageModel
from tether.models.batch import image_groups
from tether.models.image_cache import concatenate
from tether.models.llava import _TOWERS_WITH_CLS


class LlavaNextAdapter(VisionLanguageModel):
    arch = "llava_next"

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        super().__init__(model, tokenizer, image_processor, chat_template, path)

    def process_images(self, images) -> dict:
        out = self.image_processor(images=list(images), return_tensors="pt")
        return {
            "pixel_values": out["pixel_values"].to(self.base_model.dtype),
            "image_sizes": out["image_sizes"],
        }

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        tile_height, tile_width = image_inputs["pixel_values"].shape[-2:]
        return [
            self._tokens_per_image(int(h), int(w), tile_height, tile_width)
            for h, w in image_inputs["image_sizes"].tolist()
        ]

    def _base_tokens(self, tile_height: int, tile_width: int) -> tuple[int, int, int]:
        """(tokens of the base view, patch rows, patch columns) of one tile."""
        config = self.base_model.config
        patch = config.vision_config.patch_size
        rows, cols = tile_height // patch, tile_width // patch
        has_cls = config.vision_config.model_type in _TOWERS_WITH_CLS
        n = rows * cols + int(has_cls) - int(config.vision_feature_select_strategy == "default")
        return n, rows, cols

    def _grid(self, height: int, width: int, tile_height: int, tile_width: int) -> tuple[int, int]:
        best_height, best_width = select_best_resolution(
            [height, width], self.base_model.config.image_grid_pinpoints
        )
        return best_height // tile_height, best_width // tile_width

    def _unpadded(self, height, width, rows, cols, scale_rows, scale_cols) -> tuple[int, int]:
        """(feature rows, feature columns) of the crop grid once the letterbox padding is cut (``unpad_image``)."""
        current_height, current_width = rows * scale_rows, cols * scale_cols
        if width / height > current_width / current_height:
            new_height = int(round(height * (current_width / width), 7))
            current_height -= (current_height - new_height) // 2 * 2
        else:
            new_width = int(round(width * (current_height / height), 7))
            current_width -= (current_width - new_width) // 2 * 2
        return current_height, current_width

    def _tokens_per_image(self, height, width, tile_height, tile_width) -> int:
        base, rows, cols = self._base_tokens(tile_height, tile_width)
        grid_rows, grid_cols = self._unpadded(
            height, width, rows, cols, *self._grid(height, width, tile_height, tile_width)
        )
        return base + grid_rows * grid_cols + grid_rows  # one newline per feature row

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.multi_modal_projector


class LlavaOnevisionAdapter(LlavaNextAdapter):
    """Images of a sample with several images skip the anyres grid: each is padded to a square and read as
    the base view alone, plus one newline."""

    arch = "llava_onevision"

    def encode_images(self, images) -> dict:
        groups = image_groups(images)
        if all(len(group) == 1 for group in groups):
            return super().encode_images(images)
        parts = []
        for group in groups:
            if len(group) == 1:
                parts.append(self.image_inputs(group))
            else:  # the processor's multi-image preprocessing (pad to square, no tiles)
                out = self.image_processor(images=[group], return_tensors="pt")
                pixel_values = out["pixel_values"].to(self.base_model.dtype)
                parts.append({"pixel_values": pixel_values, "image_sizes": out["image_sizes"]})
        return self.group_image_inputs(concatenate(parts), [len(group) for group in groups])

    def group_image_inputs(self, image_inputs: dict, per_sample: list[int]) -> dict:
        grouped = super().group_image_inputs(image_inputs, per_sample)
        return {**grouped, "batch_num_images": torch.tensor(per_sample)}

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        counts = super().image_token_counts(image_inputs)
        if "batch_num_images" not in image_inputs:
            return counts
        tile_height, tile_width = image_inputs["pixel_values"].shape[-2:]
        base = self._base_tokens(tile_height, tile_width)[0] + 1  # + the image's newline
        several = [n > 1 for n in image_inputs["batch_num_images"].tolist() for _ in range(n)]
        return [base if multi else n for n, multi in zip(counts, several)]

    def _tokens_per_image(self, height, width, tile_height, tile_width) -> int:
        base, rows, cols = self._base_tokens(tile_height, tile_width)
        grid_rows, grid_cols = self._unpadded(
            height, width, rows, cols, *self._grid(height, width, tile_height, tile_width)
        )
        features, newlines = grid_rows * grid_cols, grid_rows
        # a grid with more than anyres_max_N tiles' worth of features is pooled down (bilinear) to about that
        max_tiles = int(self.base_model.config.vision_aspect_ratio.removeprefix("anyres_max_"))
        ratio = math.sqrt(grid_rows * grid_cols / (max_tiles * rows**2))
        if ratio > 1.1:
            features = int(grid_rows // ratio) * int(grid_cols // ratio)
            newlines = int(grid_rows // ratio)
        return base + features + newlines
