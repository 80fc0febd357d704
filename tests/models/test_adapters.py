"""Every adapter function on a tiny model of each architecture, loaded through ``load()``."""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tether.core.errors import TetherError
from tether.models import DecodingSettings, ImageTokenMismatch, ModelBatch

PROMPTS = ["is there a red square ?", "what color is the circle ?", "describe this image ."]
RESPONSES = ["yes", "the circle is blue .", "a red square left of a green triangle ."]


def images(n=3):
    colours = ["red", "blue", "green", "white"]
    out = []
    for i in range(n):
        img = Image.new("RGB", (32, 32), colours[i % 4])
        img.paste((i * 60, 0, 255 - i * 60), (4 * i, 4, 4 * i + 12, 20))
        out.append(img)
    return out


def test_describe_and_visual_token_mask(tiny_vlm):
    info = tiny_vlm.describe()
    assert info["architecture"] in ("llava", "qwen2_vl")
    batch = tiny_vlm.encode(images(), PROMPTS, RESPONSES)
    counts = tiny_vlm.image_token_counts(batch.image_inputs)
    assert tiny_vlm.visual_token_mask(batch.input_ids).sum(1).tolist() == counts
    assert all(c > 0 for c in counts)


def test_response_mask_covers_exactly_response_and_eos(tiny_vlm):
    batch = tiny_vlm.encode(images(), PROMPTS, RESPONSES)
    for i, response in enumerate(RESPONSES):
        expected = tiny_vlm.tokenizer(response, add_special_tokens=False).input_ids + [tiny_vlm.eos_token_id]
        assert batch.input_ids[i][batch.response_mask[i]].tolist() == expected


def test_logprobs_equal_manual_computation(tiny_vlm):
    batch = tiny_vlm.encode(images(), PROMPTS, RESPONSES)
    with torch.no_grad():
        result = tiny_vlm.response_logprobs(batch, return_logits=True)
        all_logps = F.log_softmax(result.logits.float(), dim=-1)
    for i in range(len(PROMPTS)):
        manual = 0.0
        for t in range(1, batch.input_ids.shape[1]):
            if batch.response_mask[i, t]:
                manual += all_logps[i, t - 1, batch.input_ids[i, t]].item()
        assert result.summed[i].item() == pytest.approx(manual, abs=1e-4)
    # prompt, image and padding positions contribute nothing
    assert torch.all(result.per_token[~result.mask] == 0)


def test_batched_logprobs_equal_one_by_one(tiny_vlm):
    imgs = images()
    with torch.no_grad():
        batched = tiny_vlm.response_logprobs(tiny_vlm.encode(imgs, PROMPTS, RESPONSES)).summed
        single = [
            tiny_vlm.response_logprobs(tiny_vlm.encode([imgs[i]], [PROMPTS[i]], [RESPONSES[i]])).summed[0]
            for i in range(len(PROMPTS))
        ]
    torch.testing.assert_close(batched, torch.stack(single), atol=1e-5, rtol=1e-5)


def test_eos_representations_do_not_depend_on_padding(tiny_vlm):
    with torch.no_grad():
        alone = tiny_vlm.text_eos_representation(["red square"])
        padded = tiny_vlm.text_eos_representation(["red square", "a blue circle above a green triangle ."])
        torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)
        imgs = images(2)
        visual_alone = tiny_vlm.visual_eos_representation(imgs[:1])
        visual_batch = tiny_vlm.visual_eos_representation(imgs)
    assert visual_batch.shape == (2, tiny_vlm.hidden_size)
    torch.testing.assert_close(visual_alone[0], visual_batch[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(visual_batch[0], visual_batch[1])


def test_visual_representation_with_other_image_sizes(tiny_vlm):
    """Images that give different token counts are padded; each row still reads its own EOS."""
    if tiny_vlm.arch == "llava":
        pytest.skip("LLaVA resizes every image to one size: no padding between visual sequences")
    small, large = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (64, 48), "blue")
    n_small, n_large = (tiny_vlm.image_token_counts(tiny_vlm.image_inputs([im]))[0] for im in (small, large))
    assert n_small < n_large
    with torch.no_grad():
        alone = tiny_vlm.visual_eos_representation([small])
        together = tiny_vlm.visual_eos_representation([small, large])
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)


def test_batched_generation_equals_batch_of_one(tiny_vlm):
    imgs = images()
    settings = DecodingSettings(max_new_tokens=6)
    batched = tiny_vlm.generate(imgs, PROMPTS, settings)
    single = [tiny_vlm.generate([imgs[i]], [PROMPTS[i]], settings)[0] for i in range(len(PROMPTS))]
    assert batched == single


def test_truncation_guard_fires_before_forward(tiny_vlm):
    batch = tiny_vlm.encode(images(2), PROMPTS[:2], RESPONSES[:2])
    first_image = int(tiny_vlm.visual_token_mask(batch.input_ids[0]).nonzero()[0])
    keep = [i for i in range(batch.input_ids.shape[1]) if i != first_image]  # drop one visual token
    cut = ModelBatch(
        batch.input_ids[:, keep],
        batch.attention_mask[:, keep],
        batch.response_mask[:, keep],
        batch.image_inputs,
        tiny_vlm.extra_inputs(batch.input_ids[:, keep]),
    )
    with pytest.raises(ImageTokenMismatch, match="sample 0: .* image tokens"):
        tiny_vlm.forward(cut)
    with pytest.raises(TetherError, match="never truncated inside the image span"):
        tiny_vlm.encode(images(1), PROMPTS[:1], RESPONSES[:1], max_length=3)


def test_max_length_cuts_only_the_response(tiny_vlm):
    full = tiny_vlm.encode(images(1), PROMPTS[2:], RESPONSES[2:])
    cut = tiny_vlm.encode(images(1), PROMPTS[2:], RESPONSES[2:], max_length=full.input_ids.shape[1] - 2)
    assert cut.response_mask.sum() == full.response_mask.sum() - 2
    tiny_vlm.check_image_tokens(cut)


def test_projector_hook_changes_visual_tokens_only_inside_block(tiny_vlm):
    imgs = images(1)
    with torch.no_grad():
        before = tiny_vlm.visual_eos_representation(imgs)
        with tiny_vlm.projector_hook(lambda out: out + 1.0):
            hooked = tiny_vlm.visual_eos_representation(imgs)
        after = tiny_vlm.visual_eos_representation(imgs)
        text_before = tiny_vlm.text_eos_representation(["red"])
        with tiny_vlm.projector_hook(lambda out: out + 1.0):
            text_hooked = tiny_vlm.text_eos_representation(["red"])
    assert not torch.allclose(before, hooked)
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(text_before, text_hooked)  # text alone never runs the projector


def test_save_and_reload_roundtrip(tiny_vlm, tmp_path):
    from tether.models import load

    tiny_vlm.save_pretrained(tmp_path / "copy")
    again = load(tmp_path / "copy")
    batch = tiny_vlm.encode(images(1), PROMPTS[:1], RESPONSES[:1])
    with torch.no_grad():
        torch.testing.assert_close(
            tiny_vlm.response_logprobs(batch).summed, again.response_logprobs(batch).summed
        )
