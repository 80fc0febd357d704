import json
import math

import pytest
import torch

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.data.preference import load_preference_records
from tether.methods.dpo import DPOCollator, DPOConfig, DPOModule, train_dpo
from tether.methods.dpo_loss import dpo_sigmoid_loss
from tether.methods.dpo_reference import (
    cached_reference_logprobs,
    compute_reference_logprobs,
    reference_fingerprint,
)
from tether.methods.noise import NoiseSettings, VisualNoise
from tether.models import load


def items_for(pairs, ref_chosen, ref_rejected):
    return [
        {"index": i, "pair": p, "ref_chosen": float(c), "ref_rejected": float(r)}
        for i, (p, c, r) in enumerate(zip(pairs, ref_chosen, ref_rejected))
    ]


def perturb(model, seed=1, scale=0.05):
    """Move the policy away from the reference so that log-ratios and gradients are not trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)


def gradients(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_shared_prefix_equals_two_sequence_loss_and_gradients(tiny_checkpoint, pair_data):
    path, images = pair_data
    pairs = load_preference_records(path)
    vlm = load(tiny_checkpoint)
    reference = compute_reference_logprobs(vlm, pairs, DPOCollator(vlm, images, shared_prefix=False), 4)
    perturb(vlm.model)
    module = DPOModule(vlm, beta=0.1, sft_weight=0.3)
    results = {}
    for shared in (True, False):
        batch = DPOCollator(vlm, images, shared_prefix=shared)(items_for(pairs, *reference))
        vlm.model.zero_grad()
        out = module(**batch)
        out["loss"].backward()
        results[shared] = (out, gradients(vlm.model))
    (packed, packed_grads), (plain, plain_grads) = results[True], results[False]
    assert 0.0 < packed["loss"].item() and packed["metrics"]["rewards/accuracies"].item() >= 0
    torch.testing.assert_close(packed["loss"], plain["loss"], atol=1e-5, rtol=0)
    for name in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "sft_loss"):
        torch.testing.assert_close(packed["metrics"][name], plain["metrics"][name], atol=1e-5, rtol=1e-6)
    assert packed_grads.keys() == plain_grads.keys() and len(packed_grads) > 10
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_reference_equals_two_sequence_reference(tiny_vlm, pair_data):
    path, images = pair_data
    pairs = load_preference_records(path)
    packed = compute_reference_logprobs(tiny_vlm, pairs, DPOCollator(tiny_vlm, images), 4)
    plain = compute_reference_logprobs(tiny_vlm, pairs, DPOCollator(tiny_vlm, images, shared_prefix=False), 6)
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=0)
    # max_length cuts each branch (prefix + response) the same way on both paths
    from tether.core.images import open_image

    prefix = tiny_vlm.encode([open_image(images, pairs[0].image)], [pairs[0].prompt]).input_ids.shape[1]
    cut = prefix + 3
    packed_cut = compute_reference_logprobs(tiny_vlm, pairs, DPOCollator(tiny_vlm, images, cut), 4)
    plain_cut = compute_reference_logprobs(tiny_vlm, pairs, DPOCollator(tiny_vlm, images, cut, False), 6)
    torch.testing.assert_close(packed_cut, plain_cut, atol=1e-5, rtol=0)
    assert (packed_cut[1] > packed[1]).all()  # rejected answers (longer than 3 tokens) lost their tails


def test_sft_terms_by_hand(tiny_vlm, pair_data, tmp_path):
    from tether.methods.sft import SFTCollator, SFTModule

    path, images = pair_data
    pairs = load_preference_records(path)[:3]
    items = items_for(pairs, [-20.0, -21.0, -22.0], [-30.0, -31.0, -32.0])
    with torch.no_grad():
        batch = DPOCollator(tiny_vlm, images)(items)
        out = DPOModule(tiny_vlm, beta=0.1, sft_weight=0.5)(**batch)
        chosen, rejected, tokens = DPOModule(tiny_vlm).pair_logprobs(packed=batch["packed"])
        dpo = dpo_sigmoid_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"], 0.1).loss
        assert out["loss"].item() == pytest.approx(
            dpo.item() + 0.5 * (-chosen.sum() / tokens.sum()).item(), 1e-6
        )

        sft = tmp_path / "sft.jsonl"
        sft.write_text(
            json.dumps({"image": "0.png", "prompt": "what is it ?", "response": "a red square"}) + "\n"
        )
        from tether.data.sft import load_sft_records

        sft_records = load_sft_records(sft)
        batch = DPOCollator(tiny_vlm, images, sft_records=sft_records)(items)
        out = DPOModule(tiny_vlm, beta=0.1, sft_weight=2.0)(**batch)
        sft_loss = SFTModule(tiny_vlm)(**SFTCollator(tiny_vlm, images)(sft_records * 3))["loss"]
        assert out["loss"].item() == pytest.approx(dpo.item() + 2.0 * sft_loss.item(), 1e-6)


def test_noiseboost_chosen_only_and_both(tiny_vlm, pair_data):
    path, images = pair_data
    pairs = load_preference_records(path)[:3]
    noise = VisualNoise(NoiseSettings(scale=1.0))
    plain_batch = DPOCollator(tiny_vlm, images, shared_prefix=False).encode(pairs)
    packed_batch = DPOCollator(tiny_vlm, images).encode(pairs)
    with torch.no_grad():
        clean_c, clean_r, _ = DPOModule(tiny_vlm).pair_logprobs(**plain_batch)
        chosen_only = DPOModule(tiny_vlm, visual_perturbation=noise, noise_branches="chosen").train()
        noisy_c, noisy_r, _ = chosen_only.pair_logprobs(**plain_batch)
        assert not torch.allclose(noisy_c, clean_c, atol=1e-4)
        torch.testing.assert_close(noisy_r, clean_r)  # the rejected branch sees the clean image
        with pytest.raises(TetherError, match="two-sequence"):
            chosen_only.pair_logprobs(**packed_batch)
        both = DPOModule(tiny_vlm, visual_perturbation=noise, noise_branches="both").train()
        both_c, both_r, _ = both.pair_logprobs(**packed_batch)
        assert not torch.allclose(both_c, clean_c, atol=1e-4) and not torch.allclose(
            both_r, clean_r, atol=1e-4
        )
        both.eval()  # noise is a training-time perturbation only
        torch.testing.assert_close(both.pair_logprobs(**packed_batch)[0], clean_c, atol=1e-5, rtol=0)


def test_lora_reference_is_the_adapter_disabled_model(tiny_checkpoint, pair_data):
    from tether.methods.settings import LoraSettings, ModelSettings
    from tether.methods.tuning import load_for_training

    path, images = pair_data
    pairs = load_preference_records(path)
    vlm = load_for_training(
        ModelSettings(path=str(tiny_checkpoint), freeze_projector=True, lora=LoraSettings(r=4, dropout=0.0))
    )
    collator = DPOCollator(vlm, images)
    before = compute_reference_logprobs(vlm, pairs, collator, 6)
    module = DPOModule(vlm)
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    batch = collator(items_for(pairs, *before))
    for _ in range(3):
        optimizer.zero_grad()
        module(**batch)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        policy_chosen, _, _ = module.pair_logprobs(**collator.encode(pairs))
    assert not torch.allclose(policy_chosen, before[0], atol=1e-3)  # the adapters learned something
    after = compute_reference_logprobs(vlm, pairs, collator, 6)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    # no second copy of the weights: the only parameters beyond the checkpoint's are the adapters
    base_names = {n for n, _ in vlm.base_model.named_parameters() if "lora_" not in n}
    assert len(base_names) == len(list(load(tiny_checkpoint).model.parameters()))


def test_train_dpo_learns_and_caches_reference(tiny_checkpoint, pair_data, tmp_path):
    path, images = pair_data
    out = tmp_path / "run"
    overrides = [
        f"model.path={tiny_checkpoint}",
        f"data.train=[{path}]",
        f"data.images={images}",
        f"train.output_dir={out}",
        "train.max_steps=12",
        "train.learning_rate=3e-3",
        "train.logging_steps=1",
        "train.save_steps=100",
        "train.per_device_train_batch_size=6",
        "train.progress_bar=false",
        "train.lr_scheduler_type=constant",
    ]
    exported = train_dpo(load_config(DPOConfig, None, overrides))
    record = json.loads((out / "run.json").read_text())
    logs = [r for r in record["log_history"] if "loss" in r]
    assert logs[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # step 1: policy == cached reference
    assert logs[-1]["loss"] < 0.5 and logs[-1]["rewards/accuracies"] == 1.0
    assert logs[-1]["rewards/margins"] > 0
    assert record["shared_prefix"] is True and record["reference_cache_hit"] is False
    assert (exported / "config.json").is_file()

    # a second run over the same model and data reuses the cache; other data gets another fingerprint
    vlm = load(tiny_checkpoint)
    pairs = load_preference_records(path)
    fingerprint = reference_fingerprint(tiny_checkpoint, "float32", pairs, images, None)
    assert fingerprint == record["reference_fingerprint"]
    chosen, _, cache, hit = cached_reference_logprobs(
        vlm, pairs, DPOCollator(vlm, images), 6, out, fingerprint
    )
    assert hit and str(cache) == record["reference_cache"] and chosen.shape == (6,)
    assert reference_fingerprint(tiny_checkpoint, "float32", pairs[:5], images, None) != fingerprint
    assert reference_fingerprint(tiny_checkpoint, "float32", pairs, images, 12) != fingerprint


@pytest.mark.parametrize("name", ["tiny.yaml", "hadpo_llava15_7b.yaml"])
def test_recipes_load(name):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "configs" / "dpo" / name
    config = load_config(DPOConfig, recipe)
    assert config.dpo.beta == 0.1 and config.data.train


def test_cli_reports_user_errors_in_one_line(capsys, tmp_path):
    from tether.cli import main

    assert main(["train", "dpo", "--set", f"train.output_dir={tmp_path}"]) == 2
    assert "data.train lists no preference files" in capsys.readouterr().err
    assert main(["train", "dpo", "--set", "dpo.sft_target=everything"]) == 2
    assert "dpo.sft_target must be 'chosen' or 'data'" in capsys.readouterr().err


def test_train_dpo_follows_the_noise_schedule(tiny_checkpoint, pair_data, tmp_path, noise_scales):
    path, images = pair_data
    overrides = [
        f"model.path={tiny_checkpoint}",
        f"data.train=[{path}]",
        f"data.images={images}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=3",
        "train.save_steps=100",
        "train.per_device_train_batch_size=6",
        "train.progress_bar=false",
        "noiseboost={scale: 0.5, schedule: linear, final_scale: 0.1}",
    ]
    train_dpo(load_config(DPOConfig, None, overrides))
    assert sorted(set(noise_scales), reverse=True) == [0.5, 0.3, 0.1]  # one scale per step, down to the last
    assert noise_scales == sorted(noise_scales, reverse=True)
