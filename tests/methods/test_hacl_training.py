import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.data.negatives import NegativePair
from tether.data.sft import SFTRecord
from tether.methods.hacl import (
    HACLCollator,
    HACLConfig,
    HACLModule,
    HACLSettings,
    attach_negatives,
    train_hacl,
)
from tether.methods.hacl_loss import hacl_contrastive_loss
from tether.methods.sft import SFTModule
from tether.methods.trainer import TRAINABLE_WEIGHTS
from tether.models import ModelBatch


def test_attach_negatives_matches_image_and_caption():
    records = [
        SFTRecord("a.png", "p", "a red square"),
        SFTRecord("b.png", "p", "a red square "),
        SFTRecord("c.png", "p", "x"),
    ]
    pairs = [
        NegativePair("b.png", "a red square", "a red circle", ["object"]),
        NegativePair(None, "a red square", "a blue square", ["attribute"]),
    ]
    examples = attach_negatives(records, pairs)
    # a.png: no (image, caption) match, falls back to the first negative of that caption; c.png: none
    assert [e.negative for e in examples] == ["a red circle", "a red circle", None]


def test_collator_batches_captions_and_negatives_together(tiny_vlm, hacl_examples):
    examples, images = hacl_examples
    batch = HACLCollator(tiny_vlm, images)(examples)
    # 6 captions then 5 negatives in one text batch; sample 5 has none
    assert batch["negative_index"].tolist() == [6, 7, 8, 9, 10, -1]
    assert batch["text_batch"]["input_ids"].shape[0] == 11
    assert batch["visual_batch"]["input_ids"].shape[0] == 6
    text = tiny_vlm.tokenizer.decode(batch["text_batch"]["input_ids"][7], skip_special_tokens=True)
    assert text.split() == examples[1].negative.split()


def test_loss_is_lm_plus_weighted_contrastive_with_three_forwards(tiny_vlm, hacl_examples):
    examples, images = hacl_examples
    batch = HACLCollator(tiny_vlm, images)(examples)
    torch.manual_seed(0)
    module = HACLModule(tiny_vlm, HACLSettings(weight=0.5, negatives_both_sides=True))
    calls = []
    inner = tiny_vlm.base_model.model
    handle = inner.register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        with torch.no_grad():
            out = module(**batch)
    finally:
        handle.remove()
    assert len(calls) == 3  # L_G, visual-only, captions + negatives: batched, not per sample

    with torch.no_grad():
        lm = SFTModule(tiny_vlm)(image_batch=batch["image_batch"])["loss"]
        image = tiny_vlm.visual_eos_representation([Image.open(images / f"{i}.png") for i in range(6)])
        captions = tiny_vlm.text_eos_representation([e.record.response for e in examples])
        negatives = tiny_vlm.text_eos_representation([e.negative or e.record.response for e in examples])
        norm = torch.nn.functional.normalize
        loss_v, loss_t = hacl_contrastive_loss(
            norm(module.image_head(image), dim=-1),
            norm(module.text_head(captions), dim=-1),
            norm(module.text_head(negatives), dim=-1),
            torch.tensor([True] * 5 + [False]),
            torch.tensor(0.07),
            negatives_both_sides=True,
        )
    assert out["loss"].item() == pytest.approx((lm + 0.5 * (loss_v + loss_t) / 2).item(), rel=1e-4)
    assert out["metrics"]["loss_v"].item() == pytest.approx(loss_v.item(), rel=1e-4)
    assert out["metrics"]["temperature"].item() == pytest.approx(0.07, rel=1e-5)


def test_eos_representation_ignores_padding(tiny_vlm):
    short = tiny_vlm.text_eos_representation(["a red square"])
    padded = tiny_vlm.text_eos_representation(["a red square", "a blue circle left of a green triangle"])
    assert torch.allclose(short[0], padded[0], atol=1e-5)
    batch = tiny_vlm.visual_only_batch([Image.new("RGB", (32, 32), "red")])
    assert batch.input_ids[0, -1].item() == tiny_vlm.eos_token_id
    assert isinstance(batch, ModelBatch)


def test_train_hacl_stage1_trains_projector_and_heads_only(tiny_checkpoint, hacl_settings, tmp_path):
    from safetensors.torch import load_file

    from tether.models import load

    out = tmp_path / "run"
    steps = ["train.max_steps=8", "train.learning_rate=5e-3", "train.logging_steps=2", "train.save_steps=8"]
    config = load_config(HACLConfig, None, hacl_settings(out, *steps))
    assert config.model.freeze_llm and not config.model.freeze_projector
    exported = train_hacl(config)
    record = json.loads((out / "run.json").read_text())
    assert record["with_negative"] == 5 and record["examples"] == 6
    logs = [r for r in record["log_history"] if "loss" in r]
    assert {"lm_loss", "loss_v", "loss_t", "temperature", "i2t_accuracy"} <= set(logs[0])
    assert logs[-1]["loss"] < logs[0]["loss"]
    saved = load_file(str(out / "checkpoint-8" / TRAINABLE_WEIGHTS))
    assert any(k.startswith("image_head.") for k in saved) and "temperature.log_temperature" in saved
    assert not any("language_model" in k or "lm_head" in k for k in saved)  # LLM frozen in stage 1
    heads = load_file(str(out / "hacl_heads.safetensors"))
    assert heads["image_head.weight"].shape == (8, 32)  # hidden 32 -> 32 / 4
    before, after = load(tiny_checkpoint), load(exported)
    b, a = dict(before.model.named_parameters()), dict(after.model.named_parameters())
    projector = {n for n, _ in before.projector.named_parameters()}
    changed = {n for n in b if not torch.equal(b[n], a[n])}
    assert changed and all(any(n.endswith(p) for p in projector) for n in changed)


@pytest.mark.parametrize("recipe", ["tiny.yaml", "llava15_7b_stage1.yaml"])
def test_shipped_recipes_load_as_stage1(recipe):
    from pathlib import Path

    config = load_config(HACLConfig, Path(__file__).resolve().parents[2] / "configs" / "hacl" / recipe)
    assert config.model.freeze_llm and config.model.freeze_vision and not config.model.freeze_projector
    assert config.data.negatives and config.hacl.weight == 1.0 and config.hacl.temperature_init == 0.07
    assert config.data.template == "plain"  # LLaVA's stage-1 format: the shared visual prefix applies
