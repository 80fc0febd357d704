"""Qwen3-VL (ViT with a patch merger and DeepStack features → Qwen3 LLM with interleaved M-RoPE) and
LLaVA-OneVision-1.5 (the same kind of tower → Qwen3 LLM with plain 1-D RoPE).

Both take Qwen2-VL's image processor and layout (``<|vision_start|>`` n x ``<|image_pad|>``
``<|vision_end|>``, n = grid cells / merge²). Qwen3-VL also adds DeepStack features (from intermediate
tower layers, through their own mergers) to the LLM's first hidden states at the visual positions;
NoiseBoost's hook is the final merger, whose output is what replaces the visual tokens' embeddings.
"""

import torch

from tether.models.adapter import VisionLanguageModel
from tether.models.qwen2_vl import Qwen2VLAdapter


class Qwen3VLAdapter(Qwen2VLAdapter):
    arch = "qwen3_vl"


class LlavaOnevision15Adapter(Qwen2VLAdapter):
    arch = "llava_onevision1_5"

    def extra_inputs(self, input_ids: torch.Tensor) -> dict:
        return {}  # 1-D RoPE: no token types

    def continuation_position_ids(self, prefix_length: int, suffix_length: int, batch_size: int):
        return None

    def position_ids(self, input_ids, attention_mask, image_inputs) -> torch.Tensor:
        return VisionLanguageModel.position_ids(self, input_ids, attention_mask, image_inputs)
