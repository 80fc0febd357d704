"""A corpus of tiny checkpoints laid out as the Hub's publishers lay them out, built with transformers' classes.

LLaVA-1.5 as llava-hf publishes it (``LlavaForConditionalGeneration``, a Llama sentencepiece-style tokenizer,
``CLIPImageProcessor``, ``LlavaProcessor`` with its ``processor_config.json``) and Qwen2.5-VL as Qwen does
(``Qwen2_5_VLForConditionalGeneration``, a byte-level BPE tokenizer, ``Qwen2VLImageProcessor``, a
``generation_config.json`` with two EOS ids). Each comes in the layouts that occur: one ``model.safetensors``
or sharded weights with an index, and the chat template in ``chat_template.jinja``, ``chat_template.json``
or ``tokenizer_config.json``. Everything is generated at test time and stays small (a few hundred KB).

``hf_processor(path)`` is transformers' own processor for a checkpoint. Qwen2-VL's processor class holds a
video processor that needs torchvision, which is not installed here; without it the same processor class is
loaded through its own ``from_pretrained`` (which reads ``processor_config.json`` and every template home in
transformers' order), with only the video half left out. Its ``__call__`` then composes image processor and
tokenizer exactly as with torchvision.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# llava-hf/llava-1.5-*-hf's template, verbatim
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Qwen/Qwen2.5-VL-*-Instruct's template, verbatim
QWEN_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
    "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] "
    "== 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value "
    "+ 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|>"
    "<|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = "
    "video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|>"
    "<|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QUESTIONS = ["Is there a red square in the image?", "Describe the image in detail."]
ANSWERS = ["Yes, there is a red square.", "A red square left of a blue circle."]
_TEXT = (
    "USER ASSISTANT system user assistant You are a helpful assistant. Is there a red square in the image? "
    "Describe the image in detail. Yes, there is a red square. No, there is not. A red square left of a blue "
    "circle. yes no YES NO what color shape is it"
)

FAMILIES = ("llava", "qwen2_5_vl")
# where the weights and the template live; every family is published in each
LAYOUTS = {
    "single-jinja": {"shards": False, "template": "chat_template.jinja"},
    "sharded-json": {"shards": True, "template": "chat_template.json"},
    "tokenizer-config": {"shards": False, "template": "tokenizer_config.json"},
}
IMAGE_SIZE = 32


def build(family: str, layout: str, out: Path) -> Path:
    """Write a tiny ``family`` checkpoint in ``layout`` to ``out``."""
    torch.manual_seed(0)
    model, processor_files, template = {"llava": _llava, "qwen2_5_vl": _qwen2_5_vl}[family]()
    out.mkdir(parents=True, exist_ok=True)
    shards = LAYOUTS[layout]["shards"]
    # a shard size below the model's size splits it, with model.safetensors.index.json beside the shards
    model.save_pretrained(out, safe_serialization=True, max_shard_size="20KB" if shards else "5GB")
    processor_files(out)
    place_template(out, template, LAYOUTS[layout]["template"])
    return out


def place_template(out: Path, template: str, home: str) -> None:
    """Keep the chat template in ``home`` and nowhere else."""
    (out / "chat_template.jinja").unlink(missing_ok=True)
    (out / "chat_template.json").unlink(missing_ok=True)
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    if home == "chat_template.jinja":
        (out / home).write_text(template)
    elif home == "chat_template.json":
        (out / home).write_text(json.dumps({"chat_template": template}, indent=2))
    elif home == "tokenizer_config.json":
        tokenizer_config["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


def llama_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import LlamaTokenizer

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=list("▁\n") + sorted(set(_TEXT)),
        show_progress=False,
    )
    # answers are frequent words, so that "Yes" is one piece as in Llama's vocabulary
    backend.train_from_iterator([_TEXT] * 4 + _TEXT.split() + ["Yes", "No"] * 8, trainer)
    return LlamaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
        extra_special_tokens={"image_token": "<image>"},
    )


def _llava():
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = llama_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    return LlavaForConditionalGeneration(config), processor.save_pretrained, LLAVA_TEMPLATE


def _qwen_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    specials += ["<|image_pad|>", "<|video_pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([_TEXT] * 4 + _TEXT.split(), trainer)
    return Qwen2Tokenizer(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )


def _qwen2_5_vl():
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = _qwen_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    hidden, heads = 32, 2
    section = hidden // heads // 2 // 4
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=512,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [hidden // heads // 2 - 2 * section, section, section],
            },
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=2,
            hidden_size=16,
            intermediate_size=32,
            num_heads=2,
            out_hidden_size=hidden,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=32,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    # as Qwen publishes it: generate stops at <|im_end|> and at <|endoftext|>
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"),
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=64 * 64
    )

    def save(out):
        tokenizer.save_pretrained(out)
        image_processor.save_pretrained(out)

    return model, save, QWEN_TEMPLATE


def hf_processor(path):
    """transformers' processor of the checkpoint at ``path`` (see the module docstring for Qwen2-VL's)."""
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES, processor_class_from_name

    try:
        return AutoProcessor.from_pretrained(path)
    except ImportError as e:
        if "torchvision" not in str(e).lower():
            raise
    model_type = json.loads((Path(path) / "config.json").read_text())["model_type"]
    processor_class = processor_class_from_name(PROCESSOR_MAPPING_NAMES[model_type])

    class WithoutVideo(processor_class):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor":
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return WithoutVideo.from_pretrained(path, video_processor=_NoVideo())


class _NoVideo(dict):
    """Stands where the video processor would be (a dict, so that the processor's repr serialises it);
    images never reach it."""
