"""HACL's shared visual prefix: under LLaVA's stage-1 ``plain`` template one forward serves L_G and the images,
with the representations, loss and gradients of the separate visual-only forward."""

import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.methods.hacl import HACLCollator, HACLConfig, HACLModule, HACLSettings, train_hacl
from tether.methods.noise import NoiseSettings, VisualNoise
from tether.methods.settings import ModelSettings
from tether.methods.tuning import configure_trainable
from tether.models import load


def test_plain_template_is_the_image_then_the_response(tiny_vlm):
    image = Image.new("RGB", (32, 32), "red")
    batch = tiny_vlm.encode([image], ["describe"], ["a red square"], template="plain")
    n = int(tiny_vlm.visual_token_mask(batch.input_ids).sum())
    response = tiny_vlm.tokenizer("a red square", add_special_tokens=False).input_ids + [
        tiny_vlm.eos_token_id
    ]
    prefix = tiny_vlm.start_ids + tiny_vlm.image_span(n)
    assert (
        batch.input_ids[0].tolist() == prefix + response
    )  # the question is dropped, as in LLaVA's pretraining
    assert batch.response_mask[0].tolist() == [False] * len(prefix) + [True] * len(response)
    visual = tiny_vlm.visual_only_batch([image])
    assert visual.input_ids[0].tolist() == prefix + [tiny_vlm.eos_token_id]
    with pytest.raises(TetherError, match="template"):
        tiny_vlm.encode([image], ["describe"], ["a red square"], template="vicuna")
    with pytest.raises(TetherError, match="needs an image"):
        tiny_vlm.encode(None, ["describe"], ["a red square"], template="plain")


def test_chat_template_keeps_the_separate_forward(tiny_vlm, hacl_examples):
    examples, images = hacl_examples
    batch = HACLCollator(tiny_vlm, images, template="chat")(examples)
    assert "packed" not in batch and {"image_batch", "visual_batch"} <= set(batch)
    batch = HACLCollator(tiny_vlm, images, template="plain")(examples)
    assert "packed" in batch and "visual_batch" not in batch


def _step(module, batch):
    module.zero_grad(set_to_none=True)
    out = module(**batch)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("freeze_llm", [True, False], ids=["stage1", "llm-trains"])
def test_shared_prefix_equals_separate_forward(tiny_checkpoint, hacl_examples, freeze_llm):
    vlm = load(tiny_checkpoint)
    configure_trainable(vlm, ModelSettings(freeze_llm=freeze_llm))
    examples, images = hacl_examples
    examples = examples + examples[:2]  # rows of different lengths: the representation EOS sits mid-padding
    examples[-1].record.response += " left of a blue circle"
    torch.manual_seed(0)
    module = HACLModule(vlm, HACLSettings(negatives_both_sides=True))
    module.train()
    calls = []
    handle = vlm.base_model.model.register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        shared, shared_grads = _step(module, HACLCollator(vlm, images, template="plain")(examples))
        assert len(calls) == 2  # L_G with the images, then captions + negatives
        separate, separate_grads = _step(
            module, HACLCollator(vlm, images, template="plain", share_visual_prefix=False)(examples)
        )
        assert len(calls) == 5
    finally:
        handle.remove()
    for key in ("lm_loss", "loss_v", "loss_t", "i2t_accuracy", "token_accuracy", "caption_beats_negative"):
        assert shared["metrics"][key].item() == pytest.approx(separate["metrics"][key].item(), abs=1e-5), key
    assert shared["loss"].item() == pytest.approx(separate["loss"].item(), abs=1e-5)
    assert set(shared_grads) == set(separate_grads)
    projector = [n for n in shared_grads if "projector" in n or "merger" in n]
    assert projector and all(shared_grads[n].abs().sum() > 0 for n in projector)
    if not freeze_llm:
        assert any("language_model" in n for n in shared_grads)
    for name, grad in shared_grads.items():
        torch.testing.assert_close(grad, separate_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_noise_needs_the_separate_forward(tiny_checkpoint, hacl_examples):
    vlm = load(tiny_checkpoint)
    examples, images = hacl_examples
    module = HACLModule(vlm, visual_perturbation=VisualNoise(NoiseSettings(scale=0.5)))
    module.train()
    with pytest.raises(TetherError, match="NoiseBoost"):
        module(**HACLCollator(vlm, images, template="plain")(examples))


def test_train_hacl_plain_template_shares_the_prefix(hacl_settings, tmp_path):
    records = {}
    for name, extra in (
        ("plain", ["data.template=plain"]),
        ("noise", ["data.template=plain", "noiseboost={scale: 0.5}"]),
    ):
        out = tmp_path / name
        steps = ["train.max_steps=6", "train.learning_rate=5e-3", "train.logging_steps=1", "train.save_steps=6"]
        train_hacl(load_config(HACLConfig, None, hacl_settings(out, *steps, *extra)))
        records[name] = json.loads((out / "run.json").read_text())
    assert records["plain"]["visual_prefix"] == "shared"
    assert records["noise"]["visual_prefix"] == "separate forward"  # noise on L_G's visual tokens only
    logs = [r for r in records["plain"]["log_history"] if "loss" in r]
    assert logs[-1]["loss"] < logs[0]["loss"]


def test_train_hacl_follows_the_noise_schedule(hacl_settings, tmp_path, noise_scales):
    overrides = hacl_settings(
        tmp_path / "run",
        "train.max_steps=3",
        "train.save_steps=100",
        "noiseboost={scale: 0.5, schedule: cosine, final_scale: 0.0}",
    )
    train_hacl(load_config(HACLConfig, None, overrides))
    assert sorted(set(noise_scales), reverse=True) == [0.5, 0.25, 0.0]
