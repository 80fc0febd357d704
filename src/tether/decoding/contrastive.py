"""The step loop shared by the contrastive strategies (VCD, ICD, M3ID).

Each strategy scores the next token from two forwards: the model as asked (the main rows) and a contrast
(the distorted image, the disturbed instruction, no image). Both run as one batch of ``2B`` rows through the
model's own ``generate`` (rows ``B + i`` are row ``i``'s contrast), so every family's caching, positions
and image inputs are the ones it uses for plain generation. A logits processor, last in the list, combines
each pair of rows with the strategy's formula, picks the token (argmax, or a seeded sample after
temperature/top-k/top-p) and makes it the only choice of both rows; ``generate`` then runs greedy and
every pair continues with the same token and stops together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from tether.core.errors import TetherError
from tether.models.batch import ModelBatch, pad_rows

# (main scores [B, V], contrast scores [B, V], step: tokens generated before this one) -> scores [B, V]
Combine = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def plausibility_cutoff(scores: torch.Tensor, main: torch.Tensor, beta: float) -> torch.Tensor:
    """VCD's adaptive plausibility constraint: ``scores`` kept only where the main distribution gives at
    least ``beta`` times its top probability (``main >= log(beta) + max(main)``; logits or log-probs)."""
    if beta <= 0:
        return scores
    cutoff = torch.log(torch.tensor(beta, dtype=main.dtype)) + main.max(dim=-1, keepdim=True).values
    return scores.masked_fill(main < cutoff, float("-inf"))


def contrast(main: torch.Tensor, other: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``(1 + alpha) * main - alpha * other``, under the plausibility cut-off of ``main`` (VCD, ICD)."""
    return plausibility_cutoff((1 + alpha) * main - alpha * other, main, beta)


class PairedSelection(LogitsProcessor):
    """Combines rows ``i`` and ``B + i`` with ``combine``, selects one token for both."""

    def __init__(self, combine: Combine, decoding):
        self.combine = combine
        self.step = 0
        self.do_sample = decoding.do_sample
        self.generator = None
        self.warpers = LogitsProcessorList()
        if decoding.do_sample:
            from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

            self.generator = torch.Generator().manual_seed(decoding.seed if decoding.seed is not None else 0)
            if decoding.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(decoding.temperature))
            if decoding.top_k:
                self.warpers.append(TopKLogitsWarper(decoding.top_k))
            if decoding.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(decoding.top_p))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        half = scores.shape[0] // 2
        combined = self.combine(scores[:half].float(), scores[half:].float(), self.step)
        self.step += 1
        if self.do_sample:
            probs = torch.softmax(self.warpers(input_ids[:half], combined), dim=-1)
            tokens = torch.multinomial(probs.cpu(), 1, generator=self.generator).squeeze(1).to(scores.device)
        else:
            tokens = combined.argmax(dim=-1)
        chosen = torch.full_like(scores, float("-inf"))
        chosen.scatter_(1, tokens.repeat(2).unsqueeze(1), 0.0)
        return chosen


@torch.no_grad()
def paired_generate(vlm, batch: ModelBatch, combine: Combine, decoding) -> list[str]:
    """Generate for the first half of ``batch`` (left-padded, ``2B`` rows) against its second half."""
    if decoding.num_beams != 1:
        raise TetherError(f"decoding '{decoding.strategy}' selects one token per step: use --num-beams 1")
    # generate runs greedy over the one token the processor leaves; the processor samples if asked
    plain = replace(decoding, do_sample=False, num_beams=1, strategy="greedy", strategy_options={})
    new_tokens = vlm.generate_ids(
        None,
        [],
        plain,
        batch=batch,
        logits_processor=LogitsProcessorList([PairedSelection(combine, decoding)]),
    )[0]
    rows = new_tokens[: batch.input_ids.shape[0] // 2]
    return [t.strip() for t in vlm.tokenizer.batch_decode(rows, skip_special_tokens=True)]


def paired_batch(vlm, images, prompts, contrast_images, contrast_prompts) -> ModelBatch:
    """One left-padded batch: the samples as asked, then their contrasts (``contrast_images`` None: the
    contrast rows have no image; their image inputs are the main rows' alone)."""
    if contrast_images is not None:
        batch = vlm.encode(list(images) + list(contrast_images), list(prompts) + list(contrast_prompts),
                           padding_side="left")  # fmt: skip
        vlm.check_image_tokens(batch)
        return batch
    main = vlm.encode(images, prompts, padding_side="left")
    vlm.check_image_tokens(main)
    text = vlm.encode(None, contrast_prompts, padding_side="left")
    rows = [_unpadded(main, i) for i in range(len(prompts))] + [
        _unpadded(text, i) for i in range(len(prompts))
    ]
    input_ids, attention_mask, response_mask = pad_rows(
        rows, [[False] * len(r) for r in rows], vlm.pad_token_id, "left"
    )
    return ModelBatch(
        input_ids, attention_mask, response_mask, main.image_inputs, vlm.extra_inputs(input_ids)
    )


def _unpadded(batch: ModelBatch, row: int) -> list[int]:
    return batch.input_ids[row][batch.attention_mask[row].bool()].tolist()
