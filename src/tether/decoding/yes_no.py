"""Fast yes/no: the first answer token's distribution, with each image's prefix encoded once.

The image and the prompt text before the question are encoded once per image (a KV cache expanded over
that image's questions); one batched forward of the question suffixes then gives each question's
next-token log-probs. The answer is "Yes" if the probability mass of the yes-tokens beats that of the
no-tokens (``margins``). ``first_token_logprobs`` returns the whole distribution so that a decoding strategy
can combine two of them (VCD: the clean image's and the distorted image's, each prefix encoded once).
Agreement with generation is measured by ``benchmarks/pope_fast_vs_generate.py``.
"""

from __future__ import annotations

import torch

from tether.core.errors import TetherError
from tether.models.adapter import model_image_inputs
from tether.models.batch import pad_rows

YES_WORDS = ("Yes", "yes", " Yes", " yes", "YES")
NO_WORDS = ("No", "no", " No", " no", "NO")


def yes_no_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The tokens that start a yes answer and those that start a no answer, keeping only tokens that tell
    the two apart: a sentencepiece tokenizer (LLaVA's) splits " Yes" into "▁", "▁Yes" and " No" into "▁",
    "▁No", and "▁" in both sets would pull both margins toward zero. A word whose first token is shared
    contributes its first token that is not."""
    yes_words, no_words = _word_token_ids(tokenizer, YES_WORDS), _word_token_ids(tokenizer, NO_WORDS)
    yes_first = {tokens[0] for tokens in yes_words}
    no_first = {tokens[0] for tokens in no_words}
    yes_ids, no_ids = _telling_ids(yes_words, no_first), _telling_ids(no_words, yes_first)
    shared = set(yes_ids) & set(no_ids)
    yes_ids, no_ids = [t for t in yes_ids if t not in shared], [t for t in no_ids if t not in shared]
    if not yes_ids or not no_ids:
        raise TetherError(f"the tokenizer has no token that tells any of {YES_WORDS} from {NO_WORDS}")
    return yes_ids, no_ids


def _word_token_ids(tokenizer, words) -> list[list[int]]:
    """Each word's token ids, without unknown tokens; words the tokenizer cannot spell are left out."""
    lists = []
    for word in words:
        tokens = [
            t for t in tokenizer(word, add_special_tokens=False).input_ids if t != tokenizer.unk_token_id
        ]
        if tokens:
            lists.append(tokens)
    return lists


def _telling_ids(word_token_ids: list[list[int]], other_first: set[int]) -> list[int]:
    ids = []
    for tokens in word_token_ids:
        token = next((t for t in tokens if t not in other_first), None)
        if token is not None and token not in ids:
            ids.append(token)
    return ids


def margins(vlm, logprobs: torch.Tensor, fallback: torch.Tensor | None = None) -> torch.Tensor:
    """log P(yes-tokens) - log P(no-tokens) of each row of first-answer-token ``logprobs`` ``[questions, vocab]``
    (scores up to a constant per row will do). A strategy's scores may rule out every yes- and no-token (a
    plausibility cut-off): such a row's margin is that of ``fallback`` (the scores without the cut-off)."""
    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    result = torch.logsumexp(logprobs[:, yes_ids], dim=-1) - torch.logsumexp(logprobs[:, no_ids], dim=-1)
    if fallback is not None:
        result = torch.where(result.isnan(), margins(vlm, fallback), result)
    return result


def fast_yes_no(vlm, image, prompts: list[str]) -> list[str]:
    """Answer yes/no questions about one image with one shared prefix forward and one batched suffix forward."""
    return ["Yes" if margin > 0 else "No" for margin in yes_no_margins(vlm, image, prompts).tolist()]


def yes_no_margins(vlm, image, prompts: list[str]) -> torch.Tensor:
    """log P(yes-tokens) - log P(no-tokens) of the first answer token, per question about ``image``."""
    return multi_image_margins(vlm, [image], [(0, p) for p in prompts])


def multi_image_margins(vlm, images: list, questions: list[tuple[int, str]]) -> torch.Tensor:
    """Yes/no margins for ``(image index, prompt)`` questions: one prefix forward for all ``images`` (they must
    give the same number of visual tokens), the cache rows gathered per question, one suffix forward."""
    return margins(vlm, first_token_logprobs(vlm, images, questions))


@torch.no_grad()
def first_token_logprobs(
    vlm, images: list | None, questions: list[tuple[int, str]], image_inputs: dict | None = None
) -> torch.Tensor:
    """Log-probs ``[questions, vocab]`` of the first answer token of each ``(image index, prompt)`` question.

    ``image_inputs`` replaces the processed ``images`` (a distorted copy of them: VCD); ``images`` None asks
    the questions without an image (one left-padded forward: M3ID's unconditioned model)."""
    if images is None:
        # through the decoder and LM head: a family whose forward requires pixels (InstructBLIP) runs too
        batch = vlm.encode(None, [p for _, p in questions], padding_side="left").to(vlm.device)
        was_training = vlm.model.training
        vlm.model.eval()
        try:
            hidden = vlm.decoder_hidden_states(**batch.model_inputs())[:, -1]
            return vlm.lm_head(hidden).float().log_softmax(dim=-1)
        finally:
            vlm.model.train(was_training)
    if vlm.instruction_input_names:
        # the visual tokens read each question (InstructBLIP): no prefix to share, one left-padded forward
        batch = vlm.encode([images[i] for i, _ in questions], [p for _, p in questions], padding_side="left")
        if image_inputs is not None:
            batch.image_inputs = {**batch.image_inputs, **_gathered(image_inputs, [i for i, _ in questions])}
        return _last_logprobs(vlm, batch)
    image_inputs = image_inputs if image_inputs is not None else vlm.image_inputs(images)
    counts = vlm.image_layouts(image_inputs)
    if len(set(counts)) != 1:
        raise TetherError("images of one fast-mode batch must give the same number of visual tokens")
    rows = [vlm._prompt_ids(prompt, counts[0]) for _, prompt in questions]
    prefix_len = shared_prefix_length(rows, vlm.image_token_id)
    model = vlm.model
    was_training = model.training
    model.eval()
    try:
        # the prefix ids are the same for every image (image tokens are placeholders); only pixels differ
        prefix = torch.tensor([rows[0][:prefix_len]] * len(images), device=vlm.device)
        image_inputs = {k: v.to(vlm.device) for k, v in image_inputs.items()}
        out = model(
            input_ids=prefix,
            attention_mask=torch.ones_like(prefix),
            **model_image_inputs(image_inputs),
            **vlm.extra_inputs(prefix),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.cache
        cache.reorder_cache(torch.tensor([index for index, _ in questions], device=vlm.device))
        suffix_ids, attention, last = suffix_batch(rows, prefix_len, vlm.pad_token_id)
        positions = vlm.continuation_position_ids(prefix_len, suffix_ids.shape[1], len(rows))
        logits = model(
            input_ids=suffix_ids.to(vlm.device),
            attention_mask=attention.to(vlm.device),
            cache=cache,
            position_ids=positions,
            use_cache=True,
        ).logits
    finally:
        model.train(was_training)
    return torch.log_softmax(logits[torch.arange(len(rows)), last.to(logits.device)].float(), dim=-1)


def _last_logprobs(vlm, batch) -> torch.Tensor:
    """Next-token log-probs after each row of a left-padded ``batch``."""
    was_training = vlm.model.training
    vlm.model.eval()
    try:
        return vlm.forward(batch).logits[:, -1].float().log_softmax(dim=-1)
    finally:
        vlm.model.train(was_training)


def _gathered(image_inputs: dict, rows: list[int]) -> dict:
    """Per-image tensors of ``image_inputs`` (one row per image) repeated for each question's image."""
    index = torch.tensor(rows)
    return {k: v[index] for k, v in model_image_inputs(image_inputs).items() if torch.is_tensor(v)}


def suffix_batch(rows: list[list[int]], prefix_length: int, pad_id: int):
    """The rows past their shared prefix, right-padded so that every real token keeps its position:
    ``[rows, width]`` ids, the attention mask over prefix and suffix, and each row's last real position
    in the suffix."""
    suffixes = [row[prefix_length:] for row in rows]
    ids, suffix_mask, _ = pad_rows(suffixes, [[False] * len(s) for s in suffixes], pad_id, "right")
    attention = torch.cat([torch.ones((len(rows), prefix_length), dtype=torch.long), suffix_mask], dim=1)
    return ids, attention, suffix_mask.sum(dim=1) - 1


def shared_prefix_length(rows: list[list[int]], image_token_id: int) -> int:
    """Longest common prefix of the rows that covers the image span and leaves each row a suffix token."""
    length = min(len(r) for r in rows) - 1
    for i in range(length):
        if any(r[i] != rows[0][i] for r in rows[1:]):
            length = i
            break
    last_image = max(i for i, t in enumerate(rows[0]) if t == image_token_id)
    if length <= last_image:
        raise TetherError(
            "questions of one image differ before the image ends; fast mode cannot share the prefix"
        )
    return length
