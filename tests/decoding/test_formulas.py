"""Each strategy's tokens against a hand computation: plain forwards without a cache, one per step, the
formula written out here; and the neutral settings give exactly the model's own greedy output."""

import math
from dataclasses import replace

import pytest
import torch
from decoding_helpers import PROMPTS, images

from tether.decoding.dispatch import generate, resolve
from tether.decoding.distortion import distorted_image_inputs
from tether.models import DecodingSettings

STEPS = 6


def next_logits(vlm, image, prompt, generated, image_inputs=None):
    """The model's next-token logits after ``prompt`` (about ``image``, or none) and ``generated`` tokens."""
    batch = vlm.encode([image] if image is not None else None, [prompt], padding_side="left")
    if image_inputs is not None:
        batch.image_inputs = {**batch.image_inputs, **image_inputs}
    ids = torch.cat([batch.input_ids, torch.tensor([generated], dtype=torch.long)], dim=1)
    batch.input_ids, batch.attention_mask = ids, torch.ones_like(ids)
    with torch.no_grad():
        return vlm.forward(batch).logits[0, -1].float()


def hand_decode(vlm, score) -> str:
    generated = []
    for step in range(STEPS):
        token = int(score(generated, step).argmax())
        generated.append(token)
        if token in vlm.stop_token_ids:
            break
    return vlm.tokenizer.decode(generated, skip_special_tokens=True).strip()


def cut(scores, main, beta):
    return scores.masked_fill(main < math.log(beta) + main.max(), float("-inf"))


def decoding(strategy, **options):
    return resolve(DecodingSettings(max_new_tokens=STEPS, strategy=strategy, strategy_options=options))


def test_vcd_equals_hand_computation(llava):
    image, prompt, alpha, beta = images(1)[0], PROMPTS[2], 3.0, 0.01
    noisy = distorted_image_inputs(llava, [image], 500, 0)

    def score(generated, step):
        clean = next_logits(llava, image, prompt, generated)
        distorted = next_logits(llava, image, prompt, generated, noisy)
        return cut((1 + alpha) * clean - alpha * distorted, clean, beta)

    expected = hand_decode(llava, score)
    got = generate(llava, [image], [prompt], decoding("vcd", alpha=alpha, beta=beta))
    assert got == [expected]
    assert got != llava.generate([image], [prompt], DecodingSettings(max_new_tokens=STEPS))  # it did contrast


def test_icd_equals_hand_computation(llava):
    image, prompt, alpha, beta = images(2)[1], PROMPTS[2], 3.0, 0.01
    disturbed = "You are a confused object detector. " + prompt

    def score(generated, step):
        main = next_logits(llava, image, prompt, generated)
        other = next_logits(llava, image, disturbed, generated)
        return cut((1 + alpha) * main - alpha * other, main, beta)

    expected = hand_decode(llava, score)
    assert generate(llava, [image], [prompt], decoding("icd", alpha=alpha, beta=beta)) == [expected]


def test_m3id_equals_hand_computation(llava):
    image, prompt, lam, beta = images(1)[0], PROMPTS[2], 0.5, 0.01

    def score(generated, t):
        conditioned = next_logits(llava, image, prompt, generated).log_softmax(-1)
        unconditioned = next_logits(llava, None, prompt, generated).log_softmax(-1)
        gamma = math.exp(-lam * t)
        return cut(conditioned + (1 - gamma) / gamma * (conditioned - unconditioned), conditioned, beta)

    expected = hand_decode(llava, score)
    got = generate(llava, [image], [prompt], decoding("m3id", lam=lam, beta=beta))
    assert got == [expected]
    assert got != llava.generate([image], [prompt], DecodingSettings(max_new_tokens=STEPS))


@pytest.mark.parametrize(
    "strategy, neutral", [("vcd", {"alpha": 0.0}), ("icd", {"alpha": 0.0}), ("m3id", {"lam": 0.0})]
)
def test_neutral_setting_is_exactly_greedy(llava, strategy, neutral):
    greedy = llava.generate(images(), PROMPTS, DecodingSettings(max_new_tokens=STEPS))
    assert generate(llava, images(), PROMPTS, decoding(strategy, **neutral)) == greedy


def test_sampling_is_seeded(llava):
    settings = replace(decoding("vcd"), do_sample=True, temperature=1.5, seed=3)
    first = generate(llava, images(2), PROMPTS[:2], settings)
    assert generate(llava, images(2), PROMPTS[:2], settings) == first
    others = {tuple(generate(llava, images(2), PROMPTS[:2], replace(settings, seed=s))) for s in range(4, 8)}
    assert len(others | {tuple(first)}) > 1
