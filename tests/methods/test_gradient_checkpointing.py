"""train.gradient_checkpointing: the same loss and gradients as without it, with the recompute really done."""

import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.data.sft import load_sft_records
from tether.methods.settings import LoraSettings, ModelSettings
from tether.methods.sft import SFTCollator, SFTConfig, SFTModule, train_sft
from tether.methods.trainer import checkpointing_in_eval_mode, enable_activation_checkpointing
from tether.methods.tuning import load_for_training


@pytest.fixture
def sft_data(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "question": "what color is it ?", "answer": colour})
    rows.append({"text": "a red square left of a blue circle ."})
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, images


def _attention_calls(module: torch.nn.Module) -> list[int]:
    """A counter of forward calls of the language model's attention modules (children of checkpointed layers,
    so a recompute in the backward pass calls them again)."""
    calls = [0]
    for name, sub in module.named_modules():
        if name.endswith("self_attn") and "visual" not in name and "vision" not in name:
            sub.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _loss_and_grads(module, batch, checkpointing: bool) -> tuple[float, dict, int]:
    if checkpointing:
        enable_activation_checkpointing(module)
    calls = _attention_calls(module)
    module.zero_grad()
    loss = module(**batch)["loss"]
    forward_calls = calls[0]
    loss.backward()
    recomputed = calls[0] - forward_calls
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}
    return loss.item(), grads, recomputed


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_same_loss_and_gradients_with_checkpointing(tiny_checkpoint, sft_data, lora):
    path, images = sft_data
    records = load_sft_records(path)
    settings = ModelSettings(path=str(tiny_checkpoint), lora=LoraSettings(dropout=0.0) if lora else None)
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same LoRA initialisation on both sides
        vlm = load_for_training(settings)
        batch = SFTCollator(vlm, images, split_by_length=False)(records)
        runs.append(_loss_and_grads(SFTModule(vlm).train(), batch, checkpointing))
    (plain_loss, plain_grads, plain_recomputed), (loss, grads, recomputed) = runs
    assert plain_recomputed == 0 and recomputed > 0  # the layers really were run again in the backward pass
    assert loss == pytest.approx(plain_loss, abs=1e-6)
    assert grads.keys() == plain_grads.keys() and grads
    if lora:  # the adapters behind the frozen embeddings get gradients (transformers' input-grad hook)
        assert any("lora" in n and g.abs().sum() > 0 for n, g in grads.items())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_checkpointing_in_eval_mode_recomputes_without_dropout(tiny_checkpoint, sft_data):
    # PPO trains in eval mode; checkpointing_in_eval_mode must recompute yet keep LoRA dropout off
    path, images = sft_data
    records = load_sft_records(path)
    settings = ModelSettings(path=str(tiny_checkpoint), lora=LoraSettings(dropout=0.5))
    torch.manual_seed(0)
    vlm = load_for_training(settings)
    batch = SFTCollator(vlm, images, split_by_length=False)(records)
    module = SFTModule(vlm).eval()
    with torch.no_grad():
        reference = module(**batch)["loss"].item()
    enable_activation_checkpointing(module)
    calls = _attention_calls(module)
    with checkpointing_in_eval_mode(module):
        loss = module(**batch)["loss"]
        forward_calls = calls[0]
        loss.backward()
    assert calls[0] > forward_calls
    assert loss.item() == pytest.approx(reference, abs=1e-6)  # dropout 0.5 would change it
    assert not any(m.training for m in module.modules())


def test_frozen_models_are_left_alone(tiny_checkpoint):
    vlm = load_for_training(ModelSettings(path=str(tiny_checkpoint), freeze_llm=True, freeze_projector=True))
    with pytest.raises(TetherError, match="no trainable Hugging Face model"):
        enable_activation_checkpointing(SFTModule(vlm))


def test_train_sft_with_checkpointing_and_lora(tiny_checkpoint, sft_data, tmp_path):
    # the Trainer path: before, transformers asked the method module (no PreTrainedModel) and failed
    path, images = sft_data
    out = tmp_path / "run"
    config = load_config(
        SFTConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{path}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "train.per_device_train_batch_size=4",
            "train.progress_bar=false",
            "train.gradient_checkpointing=true",
            "model.lora={}",
        ],
    )
    train_sft(config)
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["train"]["gradient_checkpointing"] is True


def test_ppo_with_checkpointing_trains_to_the_same_weights(tiny_checkpoint, tmp_path, monkeypatch):
    # PPO's own loop (eval mode, policy and value model): the same weights with checkpointing on and off
    from safetensors.torch import load_file

    import tether.methods.ppo as ppo
    from tether.methods.ppo import PPOConfig, train_ppo
    from tether.methods.reward import RewardModel
    from tether.models import load

    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "prompt": "what color is it ?", "facts": [f"a {colour} square ."]})
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reward_model = RewardModel(load(tiny_checkpoint)).save(tmp_path / "rm")
    switched = []
    enable = ppo.enable_activation_checkpointing
    monkeypatch.setattr(ppo, "enable_activation_checkpointing", lambda m: switched.append(enable(m)))

    def run(out, checkpointing: bool):
        config = load_config(
            PPOConfig,
            None,
            [
                f"model.path={tiny_checkpoint}",
                f"data.train=[{prompts}]",
                f"data.images={images}",
                f"ppo.reward_model={reward_model}",
                f"train.output_dir={out}",
                "ppo.rollout_batch_size=2",
                "ppo.mini_batch_size=2",
                "ppo.max_new_tokens=4",
                "train.max_steps=2",
                "train.save_steps=2",
                "train.learning_rate=1e-3",
                "train.progress_bar=false",
                "model.lora={r: 4, alpha: 8, dropout: 0.0}",
                f"train.gradient_checkpointing={str(checkpointing).lower()}",
            ],
        )
        train_ppo(config, score_fn=lambda records, responses: [float("red" in r.split()) for r in responses])
        return load_file(out / "checkpoint-2" / "trainable.safetensors")

    plain = run(tmp_path / "plain", False)
    checkpointed = run(tmp_path / "checkpointed", True)
    assert switched == [2]  # the policy and the value model
    assert plain.keys() == checkpointed.keys() and plain
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in plain.items())  # trained (B starts at zero)
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], atol=1e-5, rtol=1e-4, msg=key)
