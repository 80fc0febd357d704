"""Qwen2-VL and Qwen2.5-VL: native-resolution ViT with a patch merger → Qwen2 LLM with M-RoPE."""

import torch

from tether.models.adapter import VisionLanguageModel


class Qwen2VLAdapter(VisionLanguageModel):
    arch = "qwen2_vl"
    vision_tower_name = "visual"
    vision_patch_grid = False  # 2x2 patches merged, grids of any shape
    image_token = "<|image_pad|>"
    image_prompt_text = "<|vision_start|>{image_token}<|vision_end|>"

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        super().__init__(model, tokenizer, image_processor, chat_template, path)
        self.vision_start_id = model.config.vision_start_token_id
        self.vision_end_id = model.config.vision_end_token_id

    def process_images(self, images) -> dict:
        out = self.image_processor(images=list(images), return_tensors="pt")
        return {
            "pixel_values": out["pixel_values"].to(self.base_model.dtype),
            "image_grid_thw": out["image_grid_thw"],
        }

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        merge = self.base_model.config.vision_config.spatial_merge_size
        return (image_inputs["image_grid_thw"].prod(dim=-1) // merge**2).tolist()

    def image_span(self, n_tokens: int) -> list[int]:
        return [self.vision_start_id] + [self.image_token_id] * n_tokens + [self.vision_end_id]

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.visual.merger

    def extra_inputs(self, input_ids: torch.Tensor) -> dict:
        # M-RoPE needs to know which positions are image tokens (0 = text, 1 = image)
        return {"mm_token_type_ids": (input_ids == self.image_token_id).int()}

    def continuation_position_ids(self, prefix_length: int, suffix_length: int, batch_size: int):
        # M-RoPE: text after an image continues from the image grid's largest position, which the model
        # recorded as rope_deltas (position - index) during the prefix forward
        delta = self.base_model.model.rope_deltas
        positions = (
            torch.arange(prefix_length, prefix_length + suffix_length, device=delta.device) + delta[0, 0]
        )
        return positions.view(1, 1, -1).expand(3, batch_size, -1)

    def position_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_inputs: dict
    ) -> torch.Tensor:
        """M-RoPE positions ``[3, batch, seq]``: 3-D over the image grid, shared 1-D over text."""
        position_ids, _ = self.base_model.model.get_rope_index(
            input_ids,
            mm_token_type_ids=self.extra_inputs(input_ids)["mm_token_type_ids"],
            image_grid_thw=image_inputs.get("image_grid_thw"),
            attention_mask=attention_mask,
        )
        return position_ids
