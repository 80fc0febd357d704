"""Parity with TRL's DPOTrainer (sigmoid loss) on a tiny LLaVA: same batch, same loss and gradients.

What is compared: TRL builds its batch with its own vision collator (LlavaProcessor) from TRL-format rows
and computes the loss with ``DPOTrainer.compute_loss`` (policy and a separate reference model, two sequences per
pair); tether computes the reference once (packed forward) and the loss with its shared-prefix forward. The
policy is moved away from the reference first so that log-ratios and gradients are not trivial.
"""

import pytest
import torch

from tether.data.preference import load_preference_records
from tether.methods.dpo import DPOCollator, DPOModule
from tether.methods.dpo_reference import compute_reference_logprobs
from tether.models import load

trl = pytest.importorskip("trl")


@pytest.fixture(scope="module")
def llava_checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    words = "red blue green square circle triangle left right above below".split()
    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("llava"), words)


def test_loss_and_gradients_equal_trl_dpo_trainer(llava_checkpoint, pair_data, tmp_path):
    from datasets import Dataset
    from transformers import LlavaProcessor

    from tether.core.images import open_image

    path, images = pair_data
    pairs = load_preference_records(path)[:4]
    policy, reference = load(llava_checkpoint), load(llava_checkpoint)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)

    config = policy.base_model.config
    processor = LlavaProcessor(
        image_processor=policy.image_processor,
        tokenizer=policy.tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1,  # CLIP's CLS token
        chat_template=policy.chat_template,
    )
    rows = [
        {
            "images": [open_image(images, p.image)],
            "prompt": policy.prompt_text(p.prompt),
            # TRL's vision collator appends no EOS to completions; tether's encoding does, so spell it out
            "chosen": f"{p.chosen} {policy.tokenizer.eos_token}",
            "rejected": f"{p.rejected} {policy.tokenizer.eos_token}",
        }
        for p in pairs
    ]
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"), beta=0.1, loss_type=["sigmoid"], report_to=[], use_cpu=True
    )
    trainer = trl.DPOTrainer(
        model=policy.model,
        ref_model=reference.model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    trl_batch = trainer.data_collator([dict(r) for r in rows])
    policy.model.train()
    policy.model.zero_grad()
    trl_loss = trainer.compute_loss(trainer.model, trl_batch)
    trl_loss.backward()
    trl_grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}

    # the same token sequences: TRL's [chosen; rejected] rows equal tether's two-sequence encoding
    chosen_rows = policy.encode(
        [r["images"][0] for r in rows], [p.prompt for p in pairs], [p.chosen for p in pairs]
    )
    first = trl_batch["input_ids"][0][trl_batch["attention_mask"][0].bool()]
    assert first.tolist() == chosen_rows.input_ids[0][chosen_rows.attention_mask[0].bool()].tolist()

    ref_chosen, ref_rejected = compute_reference_logprobs(reference, pairs, DPOCollator(reference, images), 4)
    items = [
        {"index": i, "pair": p, "ref_chosen": c, "ref_rejected": r}
        for i, (p, c, r) in enumerate(zip(pairs, ref_chosen.tolist(), ref_rejected.tolist()))
    ]
    policy.model.zero_grad()
    out = DPOModule(policy, beta=0.1)(**DPOCollator(policy, images)(items))
    out["loss"].backward()
    assert abs(out["loss"].item() - 0.6931) > 1e-3  # not the trivial policy == reference point
    torch.testing.assert_close(out["loss"], trl_loss, atol=1e-5, rtol=0)
    tether_grads = {n: p.grad for n, p in policy.model.named_parameters() if p.grad is not None}
    assert tether_grads.keys() == trl_grads.keys() and len(trl_grads) > 10
    for name, grad in trl_grads.items():
        torch.testing.assert_close(tether_grads[name], grad, atol=1e-5, rtol=0, msg=name)
