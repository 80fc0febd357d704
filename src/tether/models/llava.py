"""LLaVA-1.5 (llava-hf format): CLIP/SigLIP tower → MLP projector → Llama-family LLM."""

import torch

from tether.models.adapter import VisionLanguageModel

_TOWERS_WITH_CLS = {"clip_vision_model"}


class LlavaAdapter(VisionLanguageModel):
    arch = "llava"

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None):
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        super().__init__(model, tokenizer, image_processor, chat_template, path)

    def process_images(self, images) -> dict:
        pixel_values = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values.to(self.base_model.dtype)}

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        config = self.base_model.config
        pixel_values = image_inputs["pixel_values"]
        patch = config.vision_config.patch_size
        n_patches = (pixel_values.shape[-2] // patch) * (pixel_values.shape[-1] // patch)
        has_cls = config.vision_config.model_type in _TOWERS_WITH_CLS
        # "default" drops the first position (CLS, or a patch for towers without one), as LlavaModel does
        n_tokens = n_patches + int(has_cls) - int(config.vision_feature_select_strategy == "default")
        return [n_tokens] * pixel_values.shape[0]

    def processor_kwargs(self) -> dict:
        config = self.base_model.config
        return {
            "image_token": self.image_token,
            "patch_size": config.vision_config.patch_size,
            "vision_feature_select_strategy": config.vision_feature_select_strategy,
            "num_additional_image_tokens": int(config.vision_config.model_type in _TOWERS_WITH_CLS),
        }

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.model.multi_modal_projector
