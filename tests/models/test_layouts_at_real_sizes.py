"""tether's expansion of variable image layouts equals the HF processor's at the real checkpoints' sizes.

The conformance suite's 32-pixel models never reach some branches: OneVision's pooling of a grid larger
than ``anyres_max_9``, LLaVA-NeXT's non-square pinpoints, InternVL's 12 tiles, Idefics3's 4x4 crop grids.
Here the vision geometry (image size, patch size, grid pinpoints, tile and crop limits) is that of the
published checkpoints, with towers and LLMs kept tiny (one 8-wide vision layer), so only the layouts are real.
"""

import pytest
import torch
from PIL import Image

from tether.models import ADAPTERS
from tether.models.tiny import TinyConfig
from tether.models.tiny_families import BUILDERS

SIZES = [(1000, 300), (300, 1200), (2000, 2000), (2300, 900), (385, 383), (200, 100)]


def adapter(arch, image_size, patch_size, **processor):
    config = TinyConfig(
        arch=arch,
        image_size=image_size,
        patch_size=patch_size,
        vision_hidden=8,
        vision_layers=1,
        vision_heads=1,
    )
    model, tokenizer, image_processor, template = BUILDERS[arch](config, ["describe"])
    for name, value in processor.items():
        setattr(image_processor, name, value)
        if name == "image_grid_pinpoints":
            model.config.image_grid_pinpoints = value
    return ADAPTERS[arch](model, tokenizer, image_processor, template)


def llava_next():
    pinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # llava-v1.6
    vlm = adapter("llava_next", 336, 14, image_grid_pinpoints=pinpoints)
    return vlm, lambda t: t.LlavaNextProcessor(
        vlm.image_processor,
        vlm.tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def llava_onevision():
    pinpoints = [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)]  # llava-onevision-qwen2
    vlm = adapter("llava_onevision", 384, 14, image_grid_pinpoints=pinpoints)
    return vlm, lambda t: t.LlavaOnevisionProcessor(
        vlm.image_processor,
        vlm.tokenizer,
        video_processor=None,
        num_image_tokens=(384 // 14) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
    )


def internvl():
    vlm = adapter("internvl", 448, 14, max_patches=12)  # InternVL3
    return vlm, lambda t: t.InternVLProcessor(
        vlm.image_processor,
        vlm.tokenizer,
        video_processor=None,
        image_seq_length=vlm.base_model.config.image_seq_length,
    )


def idefics3():
    vlm = adapter("idefics3", 364, 14, size={"longest_edge": 4 * 364})  # Idefics3-8B
    return vlm, lambda t: t.Idefics3Processor(
        vlm.image_processor, vlm.tokenizer, image_seq_len=vlm.tokens_per_crop
    )


def idefics3_unsplit():
    """Without image splitting an image is its global view alone (the processor's rows = cols = 0)."""
    vlm = adapter("idefics3", 364, 14, size={"longest_edge": 364}, do_image_splitting=False)
    return vlm, lambda t: t.Idefics3Processor(
        vlm.image_processor, vlm.tokenizer, image_seq_len=vlm.tokens_per_crop
    )


def smolvlm():
    vlm = adapter("smolvlm", 512, 16, size={"longest_edge": 4 * 512})  # SmolVLM2
    return vlm, lambda t: t.SmolVLMProcessor(
        vlm.image_processor, vlm.tokenizer, video_processor=None, image_seq_len=vlm.tokens_per_crop
    )


@pytest.mark.parametrize(
    "family", [llava_next, llava_onevision, internvl, idefics3, idefics3_unsplit, smolvlm]
)
def test_expansion_equals_hf_processor_at_real_sizes(family, processors_without_torchvision):
    import transformers

    vlm, make_processor = family()
    if family is idefics3_unsplit:  # one layout for every size: a single global view
        image = Image.new("RGB", SIZES[0], "red")
        assert vlm.image_layouts(vlm.image_inputs([image])) == [(0, 0)]
    processor = make_processor(transformers)
    counts = set()
    for size in SIZES:
        image = Image.new("RGB", size, "red")
        ours = vlm.encode([image], ["describe"])
        theirs = processor(images=[image], text=[vlm.prompt_text("describe")], return_tensors="pt")
        assert ours.input_ids[0].tolist() == theirs["input_ids"][0].tolist(), size
        counts.add(vlm.image_token_counts(ours.image_inputs)[0])
    assert len(counts) >= (1 if family is idefics3_unsplit else 3)  # the sizes really give different layouts


def test_pooled_onevision_grid_is_what_the_model_fills():
    """A 2000x2000 image gives a 6x6 grid, pooled to about anyres_max_9: the model's own feature count must
    equal tether's (transformers raises on a mismatch), and the row newlines are where tether expects."""
    vlm, _ = llava_onevision()
    batch = vlm.encode([Image.new("RGB", (2000, 2000), "red")], ["describe"])
    grid_rows = 6 * 27  # 6 tiles of 27 patches
    max_rows = int(grid_rows / (grid_rows**2 / (9 * 27**2)) ** 0.5)
    assert vlm.image_token_counts(batch.image_inputs) == [27 * 27 + max_rows * max_rows + max_rows]
    with torch.no_grad():
        vlm.forward(batch)


def test_batch_of_different_crop_grids_equals_one_by_one():
    """Images with different crop counts share a batch through zero-padded crop stacks, which the model skips."""
    vlm, _ = idefics3()
    images = [Image.new("RGB", (1000, 300), "red"), Image.new("RGB", (2000, 2000), "blue")]
    prompts, responses = ["describe", "describe"], ["describe", "describe describe"]
    batch = vlm.encode(images, prompts, responses)
    grids = vlm.image_layouts(batch.image_inputs)
    assert grids[0] != grids[1] and batch.image_inputs["pixel_values"].shape[1] == 4 * 4 + 1
    with torch.no_grad():
        batched = vlm.response_logprobs(batch).summed
        single = [
            vlm.response_logprobs(vlm.encode([i], [p], [r])).summed[0]
            for i, p, r in zip(images, prompts, responses)
        ]
    torch.testing.assert_close(batched, torch.stack(single), atol=1e-5, rtol=1e-5)
