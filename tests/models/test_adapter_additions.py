"""The two adapter methods Fact-RLHF added: hidden states under LoRA, and generation's EOS flags."""

import pytest
import torch
from PIL import Image

from tether.methods.settings import LoraSettings, ModelSettings
from tether.methods.tuning import configure_trainable
from tether.models import DecodingSettings, load

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_last_hidden_states_under_lora_follow_the_adapters(tiny_checkpoint):
    vlm = load(tiny_checkpoint)
    batch = vlm.encode([Image.new("RGB", (32, 32), "red")], ["what color is it ?"], ["red"])
    with torch.no_grad():
        plain = vlm.last_hidden_states(batch)
        configure_trainable(vlm, ModelSettings(lora=LoraSettings(r=4, dropout=0.0)))
        torch.testing.assert_close(vlm.last_hidden_states(batch), plain)  # LoRA B starts at zero
        for name, param in vlm.model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)
        adapted = vlm.last_hidden_states(batch)
        with vlm.model.disable_adapter():
            torch.testing.assert_close(vlm.last_hidden_states(batch), plain)
    assert not torch.allclose(adapted, plain)
    assert adapted.shape == (1, batch.input_ids.shape[1], vlm.hidden_size)


def test_generate_with_eos_flags(tiny_vlm):
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    prompts = ["what color is it ?"] * 2
    settings = DecodingSettings(max_new_tokens=3)
    eos = tiny_vlm.eos_token_id
    texts, finished = tiny_vlm.generate_with_eos(images, prompts, settings, bad_words_ids=[[eos]])
    assert finished == [False, False]
    assert texts == tiny_vlm.generate(images, prompts, settings, bad_words_ids=[[eos]])
    texts, finished = tiny_vlm.generate_with_eos(images, prompts, settings, sequence_bias={(eos,): 100.0})
    assert finished == [True, True] and texts == ["", ""]
