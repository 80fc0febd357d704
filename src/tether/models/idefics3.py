"""Idefics3 and SmolVLM: SigLIP tower on a grid of crops plus a global view → pixel shuffle + linear
connector → Llama-family LLM.

An image of ``rows`` x ``cols`` crops expands to, per crop, ``<fake_token_around_image><row_r_col_c>`` +
``image_seq_len`` x ``<image>``, a newline after each row, then ``\\n<fake_token_around_image><global-img>``
+ the global view's tokens + ``<fake_token_around_image>`` (an unsplit image: the global part alone). The
grid comes from the image processor (``return_row_col_info``); crop stacks of a batch are zero-padded,
which the model skips. NoiseBoost's hook is the connector, whose output replaces the ``<image>`` tokens.
"""

import torch

from tether.models.batch import LAYOUT_PREFIX
from tether.models.expanded import TextExpandingAdapter

GRID = LAYOUT_PREFIX + "rows_cols"


class Idefics3Adapter(TextExpandingAdapter):
    arch = "idefics3"
    vision_tower_name = "vision_model"
    vision_patch_grid = False  # crops and a global view per image

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        self.placeholder = self.image_token
        self.fake_token = getattr(tokenizer, "fake_image_token", None) or "<fake_token_around_image>"
        self.global_tag = getattr(tokenizer, "global_image_token", None) or "<global-img>"
        super().__init__(model, tokenizer, image_processor, chat_template, path)
        config = model.config
        patches = config.vision_config.image_size // config.vision_config.patch_size
        self.tokens_per_crop = int(patches**2 / config.scale_factor**2)

    def process_images(self, images) -> dict:
        out = self.image_processor(
            images=[[image] for image in images], return_tensors="pt", return_row_col_info=True
        )
        grid = [[rows[0], cols[0]] for rows, cols in zip(out["rows"], out["cols"])]
        return {
            "pixel_values": out["pixel_values"].to(self.base_model.dtype),
            "pixel_attention_mask": out["pixel_attention_mask"],
            GRID: torch.tensor(grid, dtype=torch.long),
        }

    def image_layouts(self, image_inputs: dict) -> list:
        return [tuple(grid) for grid in image_inputs[GRID].tolist()]

    def layout_token_count(self, layout) -> int:
        rows, cols = layout
        return self.tokens_per_crop * (rows * cols + 1 if rows or cols else 1)

    def image_text(self, layout) -> str:
        rows, cols = layout
        tokens = self.image_token * self.tokens_per_crop
        global_view = f"{self.fake_token}{self.global_tag}{tokens}{self.fake_token}"
        if not rows and not cols:
            return global_view
        grid = "".join(
            "".join(f"{self.fake_token}<row_{r + 1}_col_{c + 1}>{tokens}" for c in range(cols)) + "\n"
            for r in range(rows)
        )
        return f"{grid}\n{global_view}"

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.connector


class SmolVLMAdapter(Idefics3Adapter):
    arch = "smolvlm"
