"""Tiny random-init builders for the families beyond LLaVA-1.5 and Qwen2-VL (``tiny.py`` dispatches here),
and the chat templates and text config that every tiny builder shares.

Each builder returns ``(model, tokenizer, image_processor, chat_template[, sub-folder tokenizers])`` made from the family's own
transformers config and PIL image-processor classes at toy sizes (32-pixel images, 8-pixel patches), with a
chat template in the family's published format. The sizes keep variable layouts variable: LLaVA-NeXT and
OneVision pick among 2x2 anyres grids, InternVL tiles up to 4 crops, Idefics3/SmolVLM split into row/column
crops, Qwen3-VL keeps each image's aspect.
"""

from tether.models.tokenizer import build_word_tokenizer

# The LLaVA-1.5 conversation format ("USER: <image>\n... ASSISTANT: ..."), as a chat template.
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %} {% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# The Qwen2-VL ChatML format.
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# ChatML (Qwen2 LLMs: LLaVA-OneVision, InternVL); ``{image}`` is the family's placeholder.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}IMAGE\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Gemma 3: the template writes <start_of_image>; the processor expands it.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<start_of_image>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

# Idefics3 / SmolVLM: "User:<image>question<end_of_utterance>\nAssistant:".
IDEFICS3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)

QWEN_SPECIALS = {
    "eos_token": "<|im_end|>",
    "im_start": "<|im_start|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}


def qwen_token_ids(tokenizer) -> dict:
    """The ids a Qwen2-VL-style config needs for its image and video placeholders (``QWEN_SPECIALS``)."""
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


# anyres grids of 1x1, 1x2, 2x1 and 2x2 base tiles
PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64]]


def text_config(config, tokenizer, **extra) -> dict:
    """The language model's config at toy sizes (``extra`` adds or overrides fields)."""
    base = dict(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden,
        intermediate_size=config.text_hidden * 4,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return {**base, **extra}


def vision_config(config, **extra) -> dict:
    """The vision tower's config at toy sizes (``extra`` adds fields)."""
    return dict(
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_hidden * 4,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        **extra,
    )


def build_llava_next(config, words):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tokenizer = build_word_tokenizer(words, {"image_token": "<image>"})
    side = config.image_size
    pinpoints = [[side * h // 32, side * w // 32] for h, w in PINPOINTS]
    model_config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision_config(config)),
        text_config=LlamaConfig(**text_config(config, tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=pinpoints,
        tie_word_embeddings=False,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_grid_pinpoints=pinpoints,
    )
    return LlavaNextForConditionalGeneration(model_config), tokenizer, image_processor, LLAVA_TEMPLATE


def build_llava_onevision(config, words):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tokenizer = build_word_tokenizer(
        words, {"eos_token": "<|im_end|>", "im_start": "<|im_start|>", "image_token": "<image>"}
    )
    side = config.image_size
    pinpoints = [[side * h // 32, side * w // 32] for h, w in PINPOINTS]
    model_config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", **vision_config(config)),
        text_config=Qwen2Config(**text_config(config, tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.unk_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=False,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": side, "width": side}, image_grid_pinpoints=pinpoints
    )
    template = CHATML_TEMPLATE.replace("IMAGE", "<image>")
    return LlavaOnevisionForConditionalGeneration(model_config), tokenizer, image_processor, template


def build_gemma3(config, words):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tokenizer = build_word_tokenizer(
        words,
        {
            "eos_token": "<end_of_turn>",
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "start_of_turn": "<start_of_turn>",
            "model": "model",
        },
    )
    ids = tokenizer.convert_tokens_to_ids
    head_dim = config.text_hidden // config.text_heads
    text = text_config(
        config,
        tokenizer,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=16,  # shorter than a prompt: the sliding layers really slide in the tests
        layer_types=["sliding_attention", "full_attention"][: config.text_layers],
    )
    patches_per_side = config.image_size // config.patch_size
    model_config = Gemma3Config(
        text_config=Gemma3TextConfig(**text),
        vision_config=dict(model_type="siglip_vision_model", **vision_config(config)),
        mm_tokens_per_image=(patches_per_side // 2) ** 2,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        tie_word_embeddings=False,
    )
    side = config.image_size
    image_processor = Gemma3ImageProcessorPil(size={"height": side, "width": side})
    model = Gemma3ForConditionalGeneration(model_config)
    # transformers initialises the projection to zeros (every image would look alike); a trained one is not
    model.model.multi_modal_projector.mm_input_projection_weight.data.normal_(0.0, 0.5)
    return model, tokenizer, image_processor, GEMMA3_TEMPLATE


def build_internvl(config, words):
    from transformers import InternVLConfig, InternVLForConditionalGeneration, Qwen2Config
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    tokenizer = build_word_tokenizer(
        words,
        {
            "eos_token": "<|im_end|>",
            "im_start": "<|im_start|>",
            "image_token": "<IMG_CONTEXT>",
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",  # InternVL's HF processor reads it even for images
        },
    )
    side = config.image_size
    vision = vision_config(config, use_mean_pooling=False)
    vision.update(image_size=[side, side], patch_size=[config.patch_size, config.patch_size])
    model_config = InternVLConfig(
        vision_config=vision,
        text_config=Qwen2Config(**text_config(config, tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=(side // config.patch_size) ** 2 // 4,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": side, "width": side}, crop_to_patches=True, min_patches=1, max_patches=4
    )
    template = CHATML_TEMPLATE.replace("IMAGE", "<IMG_CONTEXT>")
    return InternVLForConditionalGeneration(model_config), tokenizer, image_processor, template


def _qwen_rope(config) -> dict:
    head_dim = config.text_hidden // config.text_heads
    section = head_dim // 2 // 4
    return {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [head_dim // 2 - 2 * section, section, section],
    }


def _qwen_image_processor(config, temporal_patch_size=2):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    side = config.image_size
    return Qwen2VLImageProcessorPil(
        patch_size=config.patch_size,
        merge_size=2,
        temporal_patch_size=temporal_patch_size,
        min_pixels=(side // 2) ** 2,
        max_pixels=(2 * side) ** 2,
    )


def _build_qwen_style(config, words, config_class, model_class, text, vision, temporal_patch_size=2):
    """A model with Qwen2-VL's tokens and layout (native-resolution grid, 2x2 merge)."""
    tokenizer = build_word_tokenizer(words, QWEN_SPECIALS)
    vision = dict(
        depth=config.vision_layers,
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_hidden * 4,
        num_heads=config.vision_heads,
        patch_size=config.patch_size,
        spatial_merge_size=2,
        out_hidden_size=config.text_hidden,
        **vision,
    )
    model_config = config_class(
        text_config=text(text_config(config, tokenizer)),
        vision_config=vision,
        **qwen_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    image_processor = _qwen_image_processor(config, temporal_patch_size)
    return model_class(model_config), tokenizer, image_processor, QWEN2_VL_TEMPLATE


def build_qwen3_vl(config, words):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    def text(base):
        rope = {**_qwen_rope(config), "mrope_interleaved": True}
        return {**base, "head_dim": config.text_hidden // config.text_heads, "rope_parameters": rope}

    vision = dict(temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[0])
    return _build_qwen_style(config, words, Qwen3VLConfig, Qwen3VLForConditionalGeneration, text, vision)


def build_qwen2_5_vl(config, words):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    vision = dict(
        temporal_patch_size=2,
        window_size=2 * config.patch_size * 2,  # windows of 2x2 merged tokens, full attention in layer 0
        fullatt_block_indexes=[0],
    )
    return _build_qwen_style(
        config,
        words,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        lambda base: {**base, "rope_parameters": _qwen_rope(config)},
        vision,
    )


def build_llava_onevision1_5(config, words):
    from transformers import LlavaOnevision15Config, LlavaOnevision15ForConditionalGeneration, Qwen3Config

    return _build_qwen_style(
        config,
        words,
        LlavaOnevision15Config,
        LlavaOnevision15ForConditionalGeneration,
        lambda base: Qwen3Config(**base, head_dim=config.text_hidden // config.text_heads),
        {},
        temporal_patch_size=1,  # its tower embeds single frames
    )


def _build_idefics3_style(config, words, config_class, model_class, processor_class):
    """Idefics3 or SmolVLM: the same tokens, crop grid and connector."""
    grid_tokens = {f"row_{r}_col_{c}": f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)}
    tokenizer = build_word_tokenizer(
        words,
        {
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
            **grid_tokens,
        },
    )
    model_config = config_class(
        text_config=text_config(config, tokenizer),
        vision_config=vision_config(config),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
    )
    side = config.image_size
    # images are resized to at most 2x the encoder's side, then split into side-sized crops plus a global view
    image_processor = processor_class(
        size={"longest_edge": 2 * side}, max_image_size={"longest_edge": side}, do_image_splitting=True
    )
    return model_class(model_config), tokenizer, image_processor, IDEFICS3_TEMPLATE


def build_idefics3(config, words):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    return _build_idefics3_style(
        config, words, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil
    )


def build_smolvlm(config, words):
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    return _build_idefics3_style(
        config, words, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil
    )


# InstructBLIP has no chat format: the prompt is the instruction itself (the image tokens go in front)
INSTRUCTBLIP_TEMPLATE = (
    "{% for message in messages %}{% for c in message['content'] %}{% if c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
)


def build_instructblip(config, words):
    from tokenizers.processors import TemplateProcessing
    from transformers import InstructBlipConfig, InstructBlipForConditionalGeneration, LlamaConfig
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    tokenizer = build_word_tokenizer(words, {"image_token": "<image>"})
    # the Q-Former's own tokenizer, BERT-like: [CLS] text [SEP]
    qformer_tokenizer = build_word_tokenizer(words, {"cls_token": "[CLS]", "sep_token": "[SEP]"})
    ids = qformer_tokenizer.convert_tokens_to_ids
    qformer_tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids("[CLS]")), ("[SEP]", ids("[SEP]"))]
    )
    model_config = InstructBlipConfig(
        vision_config=vision_config(config, initializer_range=0.02),  # its default (1e-10) makes images alike
        qformer_config=dict(
            vocab_size=len(qformer_tokenizer),
            hidden_size=config.text_hidden,
            num_hidden_layers=2,
            num_attention_heads=config.text_heads,
            intermediate_size=config.text_hidden * 4,
            encoder_hidden_size=config.vision_hidden,
            pad_token_id=qformer_tokenizer.pad_token_id,
            max_position_embeddings=config.max_positions,
            hidden_dropout_prob=0.0,  # deterministic, as every other tiny model
            attention_probs_dropout_prob=0.0,
        ),
        text_config=LlamaConfig(**text_config(config, tokenizer)),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    side = config.image_size
    image_processor = BlipImageProcessorPil(size={"height": side, "width": side})
    model = InstructBlipForConditionalGeneration(model_config)
    model.query_tokens.data.normal_(0.0, 0.5)  # initialised to zeros, as pretraining would not leave them
    # the fifth item: tokenizers saved in sub-folders (where InstructBlipProcessor looks for its own)
    return model, tokenizer, image_processor, INSTRUCTBLIP_TEMPLATE, {"qformer_tokenizer": qformer_tokenizer}


BUILDERS = {
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "llava_onevision1_5": build_llava_onevision1_5,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen3_vl": build_qwen3_vl,
    "internvl": build_internvl,
    "gemma3": build_gemma3,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
    "instructblip": build_instructblip,
}
