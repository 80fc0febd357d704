"""Every strategy on every family tether loads (the conformance suite's tiny models): batched equals
batch-of-one, and the fast yes/no margins equal the formula over plain full forwards."""

import pytest
import torch
from decoding_helpers import PROMPTS, WORDS, images

from tether.decoding.dispatch import fast_margins, generate, resolve
from tether.decoding.distortion import distorted_image_inputs
from tether.decoding.registry import get_strategy
from tether.decoding.yes_no import yes_no_token_ids
from tether.models import ADAPTERS, DecodingSettings

STRATEGIES = ("vcd", "icd", "m3id")


def first_token_reference(vlm, strategy, image, prompts, settings) -> torch.Tensor:
    """Margins from one plain forward per question and contrast, combined by the strategy's formula."""
    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    margins = []
    for prompt in prompts:
        batch = vlm.encode([image], [prompt])
        if strategy == "vcd":
            other = vlm.encode([image], [prompt])
            other.image_inputs = {**other.image_inputs, **distorted_image_inputs(vlm, [image], 500, 0)}
        elif strategy == "icd":
            other = vlm.encode([image], [f"{settings.disturbance} {prompt}"])
        else:
            other = vlm.encode(None, [prompt])
        with torch.no_grad():
            main = vlm.forward(batch).logits[0, -1:].float().log_softmax(-1)
            if strategy == "m3id":
                hidden = vlm.decoder_hidden_states(**other.model_inputs())[:, -1]
                contrast = vlm.lm_head(hidden).float().log_softmax(-1)
            else:
                contrast = vlm.forward(other).logits[0, -1:].float().log_softmax(-1)
        scores = _combine(strategy, settings, main, contrast)
        margins.append(torch.logsumexp(scores[0, yes_ids], 0) - torch.logsumexp(scores[0, no_ids], 0))
    return torch.stack(margins)


def _combine(strategy, settings, main, contrast):
    import importlib

    return importlib.import_module(f"tether.decoding.{strategy}").combine(settings, main, contrast, 0)


@pytest.mark.parametrize("arch", sorted(ADAPTERS))
def test_every_strategy_on_every_family(arch, tmp_path):
    from tether.models import load
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    vlm = load(build_tiny_checkpoint(TinyConfig(arch=arch), tmp_path, WORDS))
    imgs = images(2)
    for name in STRATEGIES:
        settings = resolve(DecodingSettings(max_new_tokens=3, strategy=name))
        batched = generate(vlm, imgs, PROMPTS[:2], settings)
        assert batched == [generate(vlm, [imgs[i]], [PROMPTS[i]], settings)[0] for i in range(2)], name
        # no plausibility cut-off, so that every yes- and no-token counts on a random model
        uncut = DecodingSettings(strategy=name, strategy_options={"beta": 0.0})
        fast = fast_margins(vlm, imgs[1:], [(0, p) for p in PROMPTS[:2]], uncut)
        options = get_strategy(name).settings_cls(beta=0.0)
        reference = first_token_reference(vlm, name, imgs[1], PROMPTS[:2], options)
        torch.testing.assert_close(fast, reference, atol=1e-4, rtol=1e-4, msg=f"{arch} {name}")
