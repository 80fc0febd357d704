"""Gemma 3: SigLIP tower → average pooling + linear projector → Gemma 3 LLM, which attends
bidirectionally within each image's visual tokens.

The template writes ``<start_of_image>``; the processor makes it ``\\n\\n<start_of_image>`` + one
``<image_soft_token>`` per projected token (``mm_tokens_per_image``) + ``<end_of_image>\\n\\n``. The model
learns the image blocks from ``token_type_ids`` (1 on visual tokens), which tether passes with every
forward. Pan-and-scan crops are refused (their count depends on a crop heuristic tether does not mirror).
"""

import torch

from tether.core.errors import TetherError
from tether.models.expanded import TextExpandingAdapter


class Gemma3Adapter(TextExpandingAdapter):
    arch = "gemma3"

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        self.image_token = getattr(tokenizer, "image_token", None) or "<image_soft_token>"
        self.placeholder = getattr(tokenizer, "boi_token", None) or "<start_of_image>"
        self.end_of_image = getattr(tokenizer, "eoi_token", None) or "<end_of_image>"
        if getattr(image_processor, "do_pan_and_scan", False):
            raise TetherError(f"{path}: Gemma 3 pan-and-scan is not supported; set do_pan_and_scan false")
        super().__init__(model, tokenizer, image_processor, chat_template, path)

    def process_images(self, images) -> dict:
        out = self.image_processor(images=list(images), return_tensors="pt", do_pan_and_scan=False)
        return {"pixel_values": out["pixel_values"].to(self.base_model.dtype)}

    def image_layouts(self, image_inputs: dict) -> list:
        return [self.base_model.config.mm_tokens_per_image] * image_inputs["pixel_values"].shape[0]

    def layout_token_count(self, layout) -> int:
        return layout

    def image_text(self, layout) -> str:
        return f"\n\n{self.placeholder}{self.image_token * layout}{self.end_of_image}\n\n"

    def extra_inputs(self, input_ids: torch.Tensor) -> dict:
        # 1 marks visual tokens: the model lets each image's tokens see each other (bidirectional block)
        return {"token_type_ids": (input_ids == self.image_token_id).long()}

    def packed_attention_mask(self, mask: torch.Tensor, input_ids: torch.Tensor, position_ids: torch.Tensor):
        """The block-causal mask with each image's tokens seeing each other (as ``create_masks_for_vision_model``
        builds it from ``token_type_ids``), one per layer type: sliding-window layers also drop keys a window
        or more behind the query, measured in the positions the unpacked sequence would have."""
        is_image = input_ids == self.image_token_id
        starts = is_image & ~torch.nn.functional.pad(is_image, (1, 0))[:, :-1]
        blocks = torch.where(is_image, starts.long().cumsum(dim=1), 0)
        same_image = (blocks[:, :, None] == blocks[:, None, :]) & is_image[:, :, None]
        allowed = (mask == 0) | same_image[:, None]
        text_config = self.base_model.config.get_text_config()
        masks = {"full_attention": allowed}
        if text_config.sliding_window is not None:
            distance = position_ids[:, :, None] - position_ids[:, None, :]
            masks["sliding_attention"] = allowed & (distance < text_config.sliding_window)[:, None]
        minimum = torch.finfo(mask.dtype).min
        return {k: torch.zeros_like(mask).masked_fill(~v, minimum) for k, v in masks.items()}

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.multi_modal_projector
