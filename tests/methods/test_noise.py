import math

import pytest
import torch
from PIL import Image
from transformers import TrainerCallback, TrainerState

from tether.core.errors import TetherError
from tether.methods.noise import (
    NoiseScheduleCallback,
    NoiseSettings,
    VisualNoise,
    noise_from_settings,
    noise_hook,
    scheduled_scale,
    training_noise,
)
from tether.methods.sft import SFTCollator, SFTModule
from tether.models.decoding import DecodingSettings


def test_absolute_noise_statistics():
    torch.manual_seed(0)
    features = torch.randn(4, 500, 32) * 3 + 1
    noise = VisualNoise(NoiseSettings(scale=0.5, relative=False)).train()
    delta = noise(features) - features
    assert abs(delta.mean().item()) < 0.01
    assert delta.std().item() == pytest.approx(0.5, rel=0.02)


def test_relative_noise_follows_each_samples_feature_std():
    torch.manual_seed(0)
    features = torch.randn(2, 500, 32) * torch.tensor([1.0, 4.0]).view(2, 1, 1)
    noise = VisualNoise(NoiseSettings(scale=0.5, relative=True)).train()
    delta = noise(features) - features
    assert abs(delta.mean().item()) < 0.02
    assert delta[0].std().item() == pytest.approx(0.5 * features[0].std().item(), rel=0.02)
    assert delta[1].std().item() == pytest.approx(0.5 * features[1].std().item(), rel=0.02)
    # Qwen2-VL hands the hook flat [tokens, hidden] features: one std over all of them
    flat = torch.randn(1000, 32) * 2
    assert (noise(flat) - flat).std().item() == pytest.approx(1.0, rel=0.03)


def test_identity_in_eval_mode_and_at_zero_scale():
    features = torch.randn(2, 10, 8)
    assert torch.equal(VisualNoise(NoiseSettings(scale=5.0)).eval()(features), features)
    assert torch.equal(VisualNoise(NoiseSettings(scale=0.0)).train()(features), features)


def test_schedule_values():
    linear = NoiseSettings(scale=0.5, final_scale=0.1, schedule="linear")
    cosine = NoiseSettings(scale=0.5, final_scale=0.1, schedule="cosine")
    constant = NoiseSettings(scale=0.5, final_scale=0.1)
    assert [scheduled_scale(constant, p) for p in (0, 0.5, 1)] == [0.5, 0.5, 0.5]
    assert [scheduled_scale(linear, p) for p in (0, 0.25, 0.5, 1)] == pytest.approx([0.5, 0.4, 0.3, 0.1])
    expected_quarter = 0.1 + 0.4 * 0.5 * (1 + math.cos(math.pi / 4))  # 0.44142
    assert [scheduled_scale(cosine, p) for p in (0, 0.25, 0.5, 1)] == pytest.approx(
        [0.5, expected_quarter, 0.3, 0.1]
    )
    assert scheduled_scale(linear, 2.0) == pytest.approx(0.1)  # clamped past the end
    with pytest.raises(TetherError, match="schedule 'step'"):
        noise_from_settings({"schedule": "step"})
    with pytest.raises(TetherError, match="unknown"):
        noise_from_settings({"scael": 0.5})


def test_callback_sets_progress_from_the_trainer_step():
    noise = noise_from_settings({"scale": 0.5, "final_scale": 0.1, "schedule": "linear"})
    callback = NoiseScheduleCallback(noise)
    for step, expected in [(0, 0.5), (2, 0.3), (4, 0.1)]:
        callback.on_step_begin(None, TrainerState(global_step=step, max_steps=5), None)
        assert noise.current_scale == pytest.approx(expected)


@pytest.mark.parametrize("method", ["sft", "dpo", "hacl", "ssl"])
def test_every_method_reads_noiseboost_as_typed_settings_that_drive_the_schedule(method):
    # one typed section in every method's config: a recipe's YAML mapping and a mapping given in code both
    # become NoiseSettings, checked like a recipe (a typo is an error), and drive the same scheduled noise
    import importlib

    from tether.core.config import load_config
    from tether.core.errors import TetherError

    config_class = {"sft": "SFTConfig", "dpo": "DPOConfig", "hacl": "HACLConfig", "ssl": "SSLConfig"}[method]
    cls = getattr(importlib.import_module(f"tether.methods.{method}"), config_class)
    section = "noiseboost={scale: 0.5, final_scale: 0.1, schedule: linear}"
    from_recipe = load_config(cls, None, [section]).noiseboost
    from_code = cls(noiseboost={"scale": 0.5, "final_scale": 0.1, "schedule": "linear"}).noiseboost
    assert from_recipe == from_code == NoiseSettings(0.5, True, "linear", 0.1)
    noise, callbacks = training_noise(from_code)
    callbacks[0].on_step_begin(None, TrainerState(global_step=4, max_steps=5), None)
    assert noise.current_scale == pytest.approx(0.1)
    assert training_noise(cls(noiseboost=None).noiseboost) == (None, [])
    with pytest.raises(TetherError, match="scael"):
        cls(noiseboost={"scael": 0.5})


def _image_batch(vlm):
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    return images, ["what color is it ?"] * 2


def test_noise_never_reaches_generation(tiny_vlm):
    images, prompts = _image_batch(tiny_vlm)
    settings = DecodingSettings(max_new_tokens=6)
    plain = tiny_vlm.generate(images, prompts, settings)
    noise = VisualNoise(NoiseSettings(scale=100.0)).train()  # left in training mode on purpose
    with noise_hook(tiny_vlm, noise):
        assert tiny_vlm.generate(images, prompts, settings) == plain
        # the same hook does perturb a training-mode forward
        batch = tiny_vlm.encode(images, prompts, ["red", "blue"])
        tiny_vlm.model.train()
        try:
            with torch.no_grad():
                noised = tiny_vlm.forward(batch).logits
        finally:
            tiny_vlm.model.eval()
    with torch.no_grad():
        clean = tiny_vlm.forward(batch).logits
    assert not torch.allclose(noised, clean)


def test_sft_with_noise_perturbs_the_training_forward_only(tiny_vlm, tmp_path):
    from tether.data.sft import SFTRecord

    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{i}.png")
    records = [SFTRecord(f"{i}.png", "what color is it ?", c) for i, c in enumerate(["red", "blue"])]
    batch = SFTCollator(tiny_vlm, tmp_path)(records)
    noised = SFTModule(tiny_vlm, VisualNoise(NoiseSettings(scale=1.0)))
    plain = SFTModule(tiny_vlm)
    try:
        with torch.no_grad():
            noised.train(), plain.train()
            assert noised(**batch)["loss"].item() != pytest.approx(plain(**batch)["loss"].item(), abs=1e-6)
            noised.eval(), plain.eval()
            assert noised(**batch)["loss"].item() == plain(**batch)["loss"].item()
    finally:
        tiny_vlm.model.eval()


def test_schedule_follows_training_steps(tiny_checkpoint, tmp_path):
    from tether.data.sft import SFTRecord
    from tether.methods.settings import ModelSettings, TrainSettings
    from tether.methods.trainer import run_training
    from tether.methods.tuning import load_for_training

    Image.new("RGB", (32, 32), "red").save(tmp_path / "0.png")
    records = [SFTRecord("0.png", "what color is it ?", "red")] * 4
    vlm = load_for_training(ModelSettings(path=str(tiny_checkpoint)))
    noise = noise_from_settings({"scale": 0.5, "final_scale": 0.1, "schedule": "linear"})
    seen = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(noise.current_scale)

    settings = TrainSettings(
        output_dir=str(tmp_path / "run"),
        max_steps=3,
        per_device_train_batch_size=2,
        save_steps=100,
        progress_bar=False,
    )
    run_training(
        SFTModule(vlm, noise),
        SFTCollator(vlm, tmp_path),
        records,
        settings,
        callbacks=[NoiseScheduleCallback(noise), Record()],
    )
    assert seen == pytest.approx([0.5, 0.3, 0.1])
