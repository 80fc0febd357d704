"""Tiny random-init checkpoints of each supported architecture, for tests and the synthetic world.

``build_tiny_checkpoint(TinyConfig(arch=...), out_dir, words)`` writes an ordinary checkpoint folder
(safetensors weights, tokenizer, image processor, chat template) that ``tether.models.load`` then loads
like any real one. Only construction lives here; nothing else in tether knows a model is tiny.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from tether.core.errors import TetherError
from tether.models.tiny_families import (
    BUILDERS,
    LLAVA_TEMPLATE,
    QWEN2_VL_TEMPLATE,
    QWEN_SPECIALS,
    qwen_token_ids,
    text_config,
    vision_config,
)
from tether.models.tokenizer import build_word_tokenizer


@dataclass
class TinyConfig:
    arch: str = "llava"  # llava, qwen2_vl or a key of tiny_families.BUILDERS
    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 32
    text_layers: int = 2
    text_heads: int = 2
    max_positions: int = 512
    seed: int = 0


def build_tiny_checkpoint(config: TinyConfig, out_dir, words=()) -> Path:
    """Build a random-init model of ``config.arch`` over a word-level vocabulary and save it to ``out_dir``."""
    builders = {"llava": _build_llava, "qwen2_vl": _build_qwen2_vl, **BUILDERS}
    if config.arch not in builders:
        raise TetherError(f"no tiny builder for '{config.arch}'; choose from {sorted(builders)}")
    torch.manual_seed(config.seed)
    model, tokenizer, image_processor, template, *extra = builders[config.arch](config, words)
    return save_checkpoint(out_dir, model, tokenizer, image_processor, template, extra[0] if extra else {})


def save_checkpoint(out_dir, model, tokenizer, image_processor, template: str, sub_tokenizers=None) -> Path:
    """Write ``model`` with its tokenizer, image processor and chat template as a checkpoint folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(out_dir)
    image_processor.save_pretrained(out_dir)
    for folder, sub_tokenizer in (sub_tokenizers or {}).items():  # InstructBLIP's Q-Former tokenizer
        sub_tokenizer.save_pretrained(out_dir / folder)
    (out_dir / "chat_template.jinja").write_text(template)
    return out_dir


def _build_llava(config: TinyConfig, words):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = build_word_tokenizer(words, {"image_token": "<image>"})
    vision = CLIPVisionConfig(**vision_config(config))
    model_config = LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(**text_config(config, tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,  # a 2-layer tower has no useful penultimate layer
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
    )
    return LlavaForConditionalGeneration(model_config), tokenizer, image_processor, LLAVA_TEMPLATE


def _build_qwen2_vl(config: TinyConfig, words):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = build_word_tokenizer(words, QWEN_SPECIALS)
    head_dim = config.text_hidden // config.text_heads
    section = head_dim // 2 // 4  # M-RoPE splits rotary dims between time, height and width
    text = text_config(config, tokenizer)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [head_dim // 2 - 2 * section, section, section],
    }
    model_config = Qwen2VLConfig(
        text_config=text,
        vision_config=dict(
            depth=config.vision_layers,
            embed_dim=config.vision_hidden,
            hidden_size=config.text_hidden,
            num_heads=config.vision_heads,
            patch_size=config.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        **qwen_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    side = config.image_size
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=config.patch_size,
        merge_size=2,
        temporal_patch_size=2,
        # images of other sizes keep their aspect and get other token counts, as with the real processor
        min_pixels=(side // 2) ** 2,
        max_pixels=(2 * side) ** 2,
    )
    return Qwen2VLForConditionalGeneration(model_config), tokenizer, image_processor, QWEN2_VL_TEMPLATE
