"""PAI: "Paying More Attention to Image" (Liu, Zheng and Chen, ECCV 2024, arXiv 2407.21771; github.com/LALBJ/PAI).

Two parts, both at every decoding step:

1. **Image-attention amplification.** In the language model's layers ``start_layer`` to ``end_layer``
   (exclusive), the pre-softmax attention score ``a`` that the query predicting the next token (the last
   row of each forward) pays to an image key becomes ``a + alpha * |a|`` (the repo's ``attention.py``:
   ``attn[:, :, -1, img] = attn[:, :, -1, img].abs() * alpha + attn[:, :, -1, img]``). The image keys are
   ``vlm.visual_token_mask`` of the prompt: every family's visual tokens, whatever their layout.
2. **Contrast with the image-free logits** (the repo's ``CFG.py``): with ``s = log_softmax(logits)`` of the
   edited model with the image and ``u = log_softmax(logits)`` of the plain model on the same prompt without
   the image (``vlm.encode(None, prompts)``: the chat template without the image placeholder, as the repo's
   ``INSTRUCTION_TEMPLATE_NO_IMG``), the next-token scores are ``gamma * (s - u) + u``, and tokens with
   ``s < log(plausibility) + max s`` are cut (``-inf``). ``gamma = 1`` returns ``s`` alone, without a cut and
   without the image-free forward (as the repo does).

Defaults are the repo's README commands for LLaVA-1.5-7B (POPE and CHAIR): ``alpha = 0.2``, ``gamma = 1.1``,
``start_layer = 2``, ``end_layer = 32`` (all 32 layers of its LLM from the third on); the plausibility cut
0.1 is ``CFG.py``'s. The repo uses the same layers for every model it runs (all of them 32-layer LLMs), so
here ``end_layer = None`` means the last layer of whichever LLM is loaded and ``start_layer`` stays 2.

``generate`` runs transformers' ``generate`` (greedy or sampling as ``DecodingSettings`` says) with the
edit switched on and the contrast as a logits processor; the image-free branch keeps its own cache, one
row per prompt, so it runs with ``num_beams = 1`` (as the repo's experiments do). ``margins`` gives the
fast yes/no margins from the same edited and contrasted first-token scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from tether.core.errors import TetherError
from tether.decoding.attention import (
    AttentionHooks,
    ImageAttentionEdit,
    attention_hooks,
    decoder_layers,
    suspended,
)
from tether.decoding.registry import Strategy
from tether.decoding.yes_no import shared_prefix_length, suffix_batch, yes_no_token_ids
from tether.models.adapter import model_image_inputs
from tether.models.decoding import DecodingSettings


@dataclass
class PaiSettings:
    alpha: float = 0.2  # amplification of the image-attention scores
    gamma: float = 1.1  # contrast with the image-free logits; 1 turns it off
    start_layer: int = 2  # first edited layer (0-based)
    end_layer: int | None = None  # one past the last edited layer; None: the LLM's depth
    plausibility: float = 0.1  # tokens below this fraction of the top probability are cut

    def layers(self, depth: int) -> frozenset[int]:
        end = depth if self.end_layer is None else min(self.end_layer, depth)
        return frozenset(range(max(self.start_layer, 0), end))


def contrast(
    logits: torch.Tensor, free_logits: torch.Tensor, gamma: float, plausibility: float
) -> torch.Tensor:
    """PAI's next-token scores from the (edited) logits with the image and the logits without it."""
    scores = torch.log_softmax(logits.float(), dim=-1)
    if gamma == 1:
        return scores
    free = torch.log_softmax(free_logits.float(), dim=-1)
    cutoff = math.log(plausibility) + scores.max(dim=-1, keepdim=True).values
    return (gamma * (scores - free) + free).masked_fill(scores < cutoff, float("-inf"))


def text_model(vlm) -> torch.nn.Module:
    """What runs text-only forwards with the LM head: the model itself, or its language model where the model
    insists on images (InstructBLIP)."""
    language_model = getattr(vlm.base_model, "language_model", None)
    return language_model if hasattr(language_model, "lm_head") else vlm.model


class ImageFreeBranch:
    """The prompts without their images, decoded in step with the main rows: a left-padded prefill, then one
    token per step on its own cache, at the positions the model would give them."""

    def __init__(self, vlm, prompts: Sequence[str]):
        batch = vlm.encode(None, list(prompts), padding_side="left")
        self.vlm, self.model = vlm, text_model(vlm)
        self.input_ids, self.attention_mask = (
            batch.input_ids.to(vlm.device),
            batch.attention_mask.to(vlm.device),
        )
        self.cache = None
        self.fed = 0  # generated tokens already in the cache
        self.last_positions = None

    def next_logits(self, generated: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``[batch, vocab]`` after the prompts and the ``generated`` tokens ``[batch, t]``."""
        new = generated[:, self.fed :].to(self.input_ids.device)
        self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(new)], dim=1)
        if self.cache is None:
            input_ids = torch.cat([self.input_ids, new], dim=1)
            positions = self.vlm.position_ids(input_ids, self.attention_mask, {})
            extra = self.vlm.extra_inputs(input_ids)
        else:
            input_ids = new
            steps = torch.arange(1, new.shape[1] + 1, device=new.device)
            positions = self.last_positions + steps
            extra = {}
        with suspended():  # the repo's use_cfg flag: no edit in the image-free forward
            output = self.model(
                input_ids=input_ids,
                attention_mask=self.attention_mask,
                position_ids=positions,
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
        self.cache = output.cache
        self.last_positions = positions[..., -1:]
        self.fed = generated.shape[1]
        return output.logits[:, -1]


class ImageFreeContrast(LogitsProcessor):
    """``contrast`` as a logits processor of ``generate``: ``input_ids`` are the prompts (``prompt_length``
    wide, left-padded) and what has been generated."""

    def __init__(self, vlm, prompts: Sequence[str], prompt_length: int, settings: PaiSettings):
        self.branch = ImageFreeBranch(vlm, prompts)
        self.prompt_length = prompt_length
        self.settings = settings

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        free = self.branch.next_logits(input_ids[:, self.prompt_length :])
        return contrast(scores, free.to(scores.device), self.settings.gamma, self.settings.plausibility)


def image_edit(vlm, input_ids: torch.Tensor, settings: PaiSettings, query_rows=None) -> AttentionHooks:
    edit = ImageAttentionEdit(
        layers=settings.layers(decoder_layers(vlm)),
        alpha=settings.alpha,
        image_keys=vlm.visual_token_mask(input_ids),
        query_rows=query_rows,
    )
    return AttentionHooks(edit=edit)


@torch.no_grad()
def generate(
    vlm, images: Sequence | None, prompts: Sequence[str], settings: PaiSettings, decoding: DecodingSettings
) -> list[str]:
    """PAI decoding: transformers' ``generate`` (``decoding``'s greedy or sampling, its stop tokens and budget)
    with the image attention amplified and the image-free contrast as a logits processor."""
    decoding = decoding or DecodingSettings()
    contrasting = settings.gamma != 1
    if contrasting and decoding.num_beams != 1:
        raise TetherError("pai's image-free contrast keeps one row per prompt: use num_beams 1 (or gamma 1)")
    batch = vlm.encode(images, list(prompts), padding_side="left")
    processors = LogitsProcessorList()
    if contrasting:
        processors.append(ImageFreeContrast(vlm, prompts, batch.input_ids.shape[1], settings))
    with attention_hooks(vlm, image_edit(vlm, batch.input_ids, settings)):
        return vlm.generate(images, list(prompts), decoding, logits_processor=processors)


@torch.no_grad()
def margins(vlm, images: list, questions: list[tuple[int, str]], settings: PaiSettings) -> torch.Tensor:
    """Yes/no margins ``log P(yes tokens) - log P(no tokens)`` of PAI's first-token scores for ``(image index,
    prompt)`` questions (the convention of ``multi_image_margins``). As the fast greedy mode: each image's
    shared prefix is encoded once (unedited: the edit touches only the query that predicts the answer), then
    one suffix forward with the edit on each question's last token; one image-free forward for the contrast.
    Where no prefix can be shared (InstructBLIP's instruction-aware visual tokens, images of different
    token counts, questions that differ before the image ends), one left-padded forward per batch.
    A question whose yes and no tokens are all cut by the plausibility cut gets margin 0 (neither)."""
    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    prompts = [prompt for _, prompt in questions]
    was_training = vlm.model.training
    vlm.model.eval()
    try:
        logits = _shared_prefix_logits(vlm, images, questions, settings)
        if logits is None:
            logits = _left_padded_logits(vlm, [images[i] for i, _ in questions], prompts, settings)
        free = logits
        if settings.gamma != 1:
            free = ImageFreeBranch(vlm, prompts).next_logits(torch.zeros((len(prompts), 0), dtype=torch.long))
    finally:
        vlm.model.train(was_training)
    scores = contrast(logits, free.to(logits.device), settings.gamma, settings.plausibility)
    margin = torch.logsumexp(scores[:, yes_ids], dim=-1) - torch.logsumexp(scores[:, no_ids], dim=-1)
    return margin.nan_to_num(nan=0.0)


def _shared_prefix_logits(vlm, images, questions, settings: PaiSettings) -> torch.Tensor | None:
    """First-token logits ``[questions, vocab]`` from one prefix forward per image and one edited suffix
    forward, or None where the prefix cannot be shared."""
    if vlm.instruction_input_names:
        return None
    image_inputs = vlm.image_inputs(images)
    layouts = vlm.image_layouts(image_inputs)
    if len(set(map(str, layouts))) != 1:
        return None
    rows = [vlm._prompt_ids(prompt, layouts[0]) for _, prompt in questions]
    try:
        prefix_length = shared_prefix_length(rows, vlm.image_token_id)
    except TetherError:
        return None
    prefix = torch.tensor([rows[0][:prefix_length]] * len(images), device=vlm.device)
    out = vlm.model(
        input_ids=prefix,
        attention_mask=torch.ones_like(prefix),
        **model_image_inputs({k: v.to(vlm.device) for k, v in image_inputs.items()}),
        **vlm.extra_inputs(prefix),
        use_cache=True,
        logits_to_keep=1,
    )
    index = torch.tensor([i for i, _ in questions], device=vlm.device)
    out.cache.reorder_cache(index)
    suffix_ids, attention, last = suffix_batch(rows, prefix_length, vlm.pad_token_id)
    hooks = image_edit(vlm, prefix[index], settings, query_rows=last)
    with attention_hooks(vlm, hooks):
        logits = vlm.model(
            input_ids=suffix_ids.to(vlm.device),
            attention_mask=attention.to(vlm.device),
            cache=out.cache,
            position_ids=vlm.continuation_position_ids(prefix_length, suffix_ids.shape[1], len(rows)),
            use_cache=True,
        ).logits
    return logits[torch.arange(len(rows)), last.to(logits.device)]


def _left_padded_logits(vlm, images, prompts, settings: PaiSettings) -> torch.Tensor:
    """First-token logits ``[questions, vocab]`` from one left-padded forward with the edit on the last row."""
    batch = vlm.encode(images, prompts, padding_side="left")
    vlm.check_image_tokens(batch)
    inputs = batch.to(vlm.device)
    positions = vlm.position_ids(inputs.input_ids, inputs.attention_mask, inputs.image_inputs)
    with attention_hooks(vlm, image_edit(vlm, batch.input_ids, settings)):
        return vlm.model(**inputs.model_inputs(), position_ids=positions, logits_to_keep=1).logits[:, -1]


STRATEGY = Strategy("pai", PaiSettings, generate, margins)
