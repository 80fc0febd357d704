"""OPERA: the over-trust score, the penalty and the rollback rule against hand computations; with no penalty,
every candidate and no rollback it is transformers' beam search; every family, batched equals one by one."""

import pytest
import torch
from decoding_helpers import images
from decoding_tiny_vlms import FAMILIES, PROMPTS, tiny_vlm

from tether.decoding import opera
from tether.decoding.opera import OperaSettings
from tether.models import DecodingSettings


def test_over_trust_scores_equal_hand_computation():
    window = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    # column j: 1e-7 * prod over rows i >= j of 2 * window[i, j]
    expected = [1e-7 * (2 * 1.0) * (2 * 0.5) * (2 * 0.2), 1e-7 * (2 * 0.5) * (2 * 0.3), 1e-7 * (2 * 0.5)]
    torch.testing.assert_close(opera.over_trust_scores(window, 2.0), torch.tensor(expected))


def test_penalty_is_image_attention_then_the_largest_column_score():
    image_attention = torch.tensor([[0.3, 0.1]])
    short = torch.eye(3).expand(1, 2, 3, 3)
    penalty, _ = opera.candidate_penalties(short, image_attention, 50.0)
    torch.testing.assert_close(penalty, -image_attention)  # the first 10 tokens: reward looking at the image
    # 11 tokens, most attention on the prompt (0.01 on each response token), but from token 4 on every
    # token attends 0.5 to token 4: a summary token
    window = torch.full((11, 11), 0.01).tril()
    window[4:, 4] = 0.5
    columns = []
    for j in range(11):
        product = 1e-7
        for i in range(j, 11):
            product *= 50 * float(window[i, j])
        columns.append(product)
    penalty, location = opera.candidate_penalties(window.expand(1, 2, 11, 11), image_attention, 50.0)
    torch.testing.assert_close(penalty, torch.tensor(max(columns)).expand(1, 2))
    assert location.tolist() == [[4, 4]] and columns.index(max(columns)) == 4


def test_rollback_rule():
    settings = OperaSettings(threshold=2, num_attn_candidates=2)
    rollbacks = torch.zeros(40, dtype=torch.long)
    agree = {step: torch.tensor([12, 12]) for step in range(3)}
    assert opera._rollback_target(agree, 12, 20, settings, rollbacks) == 13  # 3 > threshold 2, right after it
    assert opera._rollback_target(agree, 12, 20, settings, rollbacks) == 13
    assert (
        opera._rollback_target(agree, 12, 20, settings, rollbacks) == 12
    )  # 13 used up: one position earlier
    assert opera._rollback_target(agree, 12, 20, settings, rollbacks) == 12
    assert opera._rollback_target(agree, 12, 20, settings, rollbacks) is None  # both used up
    assert opera._rollback_target(agree, 12, 20, settings, torch.zeros(40, dtype=torch.long)) == 13
    early = {step: torch.tensor([5, 5]) for step in range(3)}
    assert opera._rollback_target(early, 5, 20, settings, torch.zeros(40, dtype=torch.long)) is None
    split = {0: torch.tensor([12, 12]), 1: torch.tensor([12, 3]), 2: torch.tensor([12, 12])}
    assert opera._rollback_target(split, 12, 20, settings, torch.zeros(40, dtype=torch.long)) is None


@pytest.mark.parametrize("arch", ["llava", "qwen2_vl", "gemma3"])  # 1-D RoPE, M-RoPE, sliding-window cache
def test_no_penalty_all_candidates_no_rollback_is_beam_search(arch):
    vlm = tiny_vlm(arch)
    plain = vlm.generate(images(), PROMPTS, DecodingSettings(max_new_tokens=3, num_beams=2))
    neutral = OperaSettings(num_beams=2, penalty_weights=0.0, num_attn_candidates=10**6, threshold=10**6)
    assert opera.generate(vlm, images(), PROMPTS, neutral, DecodingSettings(max_new_tokens=3)) == plain


def test_every_family():
    settings = OperaSettings(num_beams=2, num_attn_candidates=2)
    decoding = DecodingSettings(max_new_tokens=4)
    for arch in FAMILIES:
        vlm, imgs = tiny_vlm(arch), images(2)
        batched = opera.generate(vlm, imgs, PROMPTS[:2], settings, decoding)
        alone = [opera.generate(vlm, [imgs[i]], [PROMPTS[i]], settings, decoding)[0] for i in range(2)]
        assert batched == alone and all(isinstance(text, str) for text in batched), arch


def test_rollback_decodes_a_position_again(monkeypatch):
    """With the rule made to fire at once, decoding rewinds (a new prefill per rollback) a bounded number of
    times and still ends."""
    prefills = []
    real = opera._Forwards.prefill

    def counting(self, generated):
        prefills.append(generated.shape[1])
        return real(self, generated)

    monkeypatch.setattr(opera._Forwards, "prefill", counting)
    monkeypatch.setattr(opera, "MIN_ROLLBACK_LOCATION", 0)
    settings = OperaSettings(num_beams=2, num_attn_candidates=2, threshold=0)
    text = opera.generate(
        tiny_vlm("llava"), images(1), PROMPTS[:1], settings, DecodingSettings(max_new_tokens=5)
    )
    assert isinstance(text[0], str)
    assert prefills[0] == 0 and len(prefills) > 1  # rollbacks rebuilt the cache
    assert len(prefills) <= 1 + 2 * settings.num_attn_candidates * 6  # each position at most N times
