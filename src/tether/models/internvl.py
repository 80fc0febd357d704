"""InternVL (2.5/3, HF format): InternViT on up to ``max_patches`` 448-pixel tiles plus a thumbnail → pixel
shuffle (2x2 patches → one token) → MLP projector → Qwen2/Llama LLM.

Each image becomes ``<img>`` + ``image_seq_length`` x tiles ``<IMG_CONTEXT>`` + ``</img>``, the tile count
coming from the image processor (``crop_to_patches``). The pixel shuffle has no weights; the module whose
output the LLM reads is the MLP projector after it, NoiseBoost's hook point. HACL's visual-only sequence is
the ``<img>…</img>`` span alone.
"""

import torch

from tether.models.batch import LAYOUT_PREFIX
from tether.models.expanded import TextExpandingAdapter

TILES = LAYOUT_PREFIX + "tiles"


class InternVLAdapter(TextExpandingAdapter):
    arch = "internvl"

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        self.image_token = getattr(tokenizer, "context_image_token", None) or "<IMG_CONTEXT>"
        self.placeholder = self.image_token
        self.start_image = getattr(tokenizer, "start_image_token", None) or "<img>"
        self.end_image = getattr(tokenizer, "end_image_token", None) or "</img>"
        super().__init__(model, tokenizer, image_processor, chat_template, path)

    def process_images(self, images) -> dict:
        out = self.image_processor(images=list(images), return_tensors="pt")
        return {
            "pixel_values": out["pixel_values"].to(self.base_model.dtype),
            TILES: torch.as_tensor(out["num_patches"]),
        }

    def image_layouts(self, image_inputs: dict) -> list:
        return [self.base_model.config.image_seq_length * int(n) for n in image_inputs[TILES]]

    def layout_token_count(self, layout) -> int:
        return layout

    def image_text(self, layout) -> str:
        return f"{self.start_image}{self.image_token * layout}{self.end_image}"

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.multi_modal_projector
