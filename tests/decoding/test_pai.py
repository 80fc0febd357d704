"""PAI: the attention edit and the contrast against hand computations; the neutral setting is greedy; every
family, batched equals one by one (generation and fast yes/no margins)."""

import math
from types import SimpleNamespace

import pytest
import torch
from decoding_helpers import images
from decoding_tiny_vlms import FAMILIES, PROMPTS, tiny_vlm

from tether.core.errors import TetherError
from tether.decoding import attention, pai
from tether.decoding.attention import AttentionHooks, ImageAttentionEdit
from tether.decoding.pai import PaiSettings
from tether.models import DecodingSettings

QUESTIONS = [(0, PROMPTS[0]), (1, PROMPTS[0]), (2, PROMPTS[1])]


def hand_attention(query, key, value, scaling, image_keys, alpha):
    """Eager causal attention, element by element, with PAI's edit on the last query row's image keys (the
    queries are the last positions of the keys' sequence)."""
    _, heads, length, _ = query.shape
    groups, offset = heads // key.shape[1], key.shape[2] - length
    out = torch.zeros(1, length, heads, query.shape[-1])
    for h in range(heads):
        k, v = key[0, h // groups], value[0, h // groups]
        for i in range(length):
            scores = []
            for j in range(offset + i + 1):
                a = float(query[0, h, i] @ k[j]) * scaling
                if i == length - 1 and j < len(image_keys) and image_keys[j]:
                    a = a + alpha * abs(a)
                scores.append(a)
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            out[0, i, h] = sum(w / total * v[j] for j, w in enumerate(weights))
    return out


def test_edited_attention_equals_hand_computation():
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 2, 4, 3), torch.randn(1, 1, 4, 3), torch.randn(1, 1, 4, 3)
    image_keys = torch.tensor([[False, True, True, False]])
    hooks = AttentionHooks(edit=ImageAttentionEdit(frozenset({0}), 0.7, image_keys), sequence_length=4)
    module = SimpleNamespace(training=False)
    output, _ = attention.edited_attention(module, query, key, value, None, hooks, scaling=0.5)
    expected = hand_attention(query, key, value, 0.5, image_keys[0].tolist(), 0.7)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    # a masked image key stays masked however large alpha is (a + alpha |a| of a masked score is positive
    # for alpha > 1): the last row ignores what that key's value holds
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    mask[:, 1] = False
    mask = mask[None, None]
    changed = value.clone()
    changed[0, 0, 1] += 100.0
    edit = ImageAttentionEdit(frozenset({0}), 3.0, image_keys)
    hooks = AttentionHooks(edit=edit, sequence_length=4)
    first, _ = attention.edited_attention(module, query, key, value, mask, hooks, scaling=0.5)
    second, _ = attention.edited_attention(module, query, key, changed, mask, hooks, scaling=0.5)
    torch.testing.assert_close(first[0, -1], second[0, -1])
    # scores: a + alpha |a| on the image keys of the edited row only
    scores = torch.tensor([[[[1.0, -2.0, 3.0], [-1.0, -4.0, 2.0]]]])  # [1, 1, 2, 3]
    edited = attention.amplify_image_scores(
        scores, torch.tensor([[True, True, False]]), torch.tensor([1]), 0.5
    )
    assert edited.tolist() == [[[[1.0, -2.0, 3.0], [-1.0 + 0.5, -4.0 + 2.0, 2.0]]]]


def test_edit_inside_a_model_uses_its_image_positions(monkeypatch):
    """In a real model the edited layer gets the visual tokens' positions and edits the query that predicts the
    answer (the fast mode's suffix forward after the shared prefix): its output equals the hand computation
    on the layer's own queries, keys and values."""
    vlm = tiny_vlm("llava")
    calls = []
    real = attention.edited_attention

    def spy(module, query, key, value, attention_mask, hooks, **kwargs):
        output = real(module, query, key, value, attention_mask, hooks, **kwargs)
        calls.append((query, key, value, kwargs["scaling"], hooks.edit.image_keys.clone(), output[0]))
        return output

    monkeypatch.setattr(attention, "edited_attention", spy)
    settings = PaiSettings(alpha=0.5, gamma=1.0, start_layer=1)
    pai.margins(vlm, images(1), [(0, PROMPTS[0])], settings)
    assert len(calls) == 1  # layer 1 only, one forward
    query, key, value, scaling, image_keys, output = calls[0]
    batch = vlm.encode(images(1), PROMPTS[:1])
    visual = vlm.visual_token_mask(batch.input_ids)
    assert torch.equal(image_keys, visual[:, : image_keys.shape[1]]) and image_keys.sum() == visual.sum() > 0
    assert key.shape[2] == batch.input_ids.shape[1]
    expected = hand_attention(query, key, value, scaling, image_keys[0].tolist(), 0.5)
    torch.testing.assert_close(output, expected, atol=1e-4, rtol=1e-4)


def test_contrast_equals_hand_computation():
    logits, free = [2.0, 1.0, 0.0, -3.0], [1.0, 1.5, 0.0, 0.0]

    def log_softmax(xs):
        total = math.log(sum(math.exp(x) for x in xs))
        return [x - total for x in xs]

    s, u = log_softmax(logits), log_softmax(free)
    expected = [
        1.1 * (si - ui) + ui if math.exp(si) >= 0.1 * math.exp(max(s)) else -math.inf for si, ui in zip(s, u)
    ]
    got = pai.contrast(torch.tensor([logits]), torch.tensor([free]), gamma=1.1, plausibility=0.1)
    assert got[0, 3] == -math.inf and expected[3] == -math.inf
    torch.testing.assert_close(got[0, :3], torch.tensor(expected[:3]))
    # gamma 1: the edited model's own log-probs, no cut
    torch.testing.assert_close(pai.contrast(torch.tensor([logits]), None, 1.0, 0.1)[0], torch.tensor(s))


def plain_margins(vlm, questions):
    from tether.decoding.yes_no import yes_no_token_ids

    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    margins = []
    with torch.no_grad():
        for i, prompt in questions:
            logits = vlm.forward(vlm.encode([images()[i]], [prompt])).logits[0, -1].float().log_softmax(-1)
            margins.append(torch.logsumexp(logits[yes_ids], 0) - torch.logsumexp(logits[no_ids], 0))
    return torch.stack(margins)


def test_every_family():
    decoding = DecodingSettings(max_new_tokens=4)
    settings = PaiSettings(alpha=2.0, gamma=1.5, start_layer=0)
    neutral = PaiSettings(alpha=0.0, gamma=1.0)
    for arch in FAMILIES:
        vlm, imgs = tiny_vlm(arch), images()
        # alpha 0 without the contrast is greedy decoding, exactly
        assert pai.generate(vlm, imgs, PROMPTS, neutral, decoding) == vlm.generate(imgs, PROMPTS, decoding), (
            arch
        )
        batched = pai.generate(vlm, imgs, PROMPTS, settings, decoding)
        alone = [pai.generate(vlm, [imgs[i]], [p], settings, decoding)[0] for i, p in enumerate(PROMPTS)]
        assert batched == alone, arch
        margins = pai.margins(vlm, imgs, QUESTIONS, settings)
        one_by_one = torch.cat([pai.margins(vlm, [imgs[i]], [(0, p)], settings) for i, p in QUESTIONS])
        torch.testing.assert_close(margins, one_by_one, atol=1e-4, rtol=1e-4, msg=arch)
        # the neutral margins are the plain forward's; the edit reaches the model, in the chosen layers only
        unedited = pai.margins(vlm, imgs, QUESTIONS, neutral)
        torch.testing.assert_close(unedited, plain_margins(vlm, QUESTIONS), atol=1e-4, rtol=1e-4, msg=arch)
        edited = pai.margins(vlm, imgs, QUESTIONS, PaiSettings(alpha=2.0, gamma=1.0, start_layer=0))
        assert (edited - unedited).abs().max() > 1e-5, (
            arch
        )  # float noise is ~1e-7; random tiny models move little
        past_depth = PaiSettings(alpha=2.0, gamma=1.0, start_layer=attention.decoder_layers(vlm))
        torch.testing.assert_close(pai.margins(vlm, imgs, QUESTIONS, past_depth), unedited, msg=arch)


def test_contrast_needs_one_beam():
    with pytest.raises(TetherError, match="num_beams 1"):
        pai.generate(tiny_vlm("llava"), images(1), PROMPTS[:1], PaiSettings(), DecodingSettings(num_beams=2))
