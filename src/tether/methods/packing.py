"""Shared-prefix packing: two continuations of one prefix in ONE row, with a block mask (DPO, HACL).

Every peer (TRL, HA-DPO, LLaVA-RLHF) runs ``[image+prompt, chosen]`` and ``[image+prompt, rejected]`` as two
sequences, so the vision tower and the (long: 576 visual tokens in LLaVA-1.5) prefix go through the model
twice. Here each pair is packed into ONE row::

    [ image + prompt | chosen | rejected ]      segment ids 0 | 1 | 2   (-1 = padding)

with a 4-D block attention mask (causal, and rejected tokens never see chosen tokens) and position ids that
restart after the prefix for the rejected segment (``position_ids`` shifted back by the chosen length; for
Qwen2-VL's M-RoPE all three axes shift alike, as text positions are equal on them). Every token then sees
exactly the context it sees in the two-sequence computation, so log-probs, loss and gradients are the same
(tests/methods/test_dpo*.py check it to 1e-5) while the prefix, the vision tower and the prompt pay once. The LM head and
softmax run only at the positions that predict response tokens. HACL folds its visual-only forward into its
language-modelling row the same way (``packed_hidden_states``).

The packed mask needs an attention implementation that takes a custom 4-D mask (``sdpa``, ``eager``:
``supports_packing``); with another one (flash attention) the methods fall back to separate forwards.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tether.core.errors import TetherError
from tether.models import ModelBatch, VisionLanguageModel
from tether.models.batch import model_image_inputs

PACKABLE_ATTENTION = ("sdpa", "eager")


def encode_packed_pairs(
    vlm: VisionLanguageModel,
    images: Sequence,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    max_length: int | None = None,
) -> dict:
    """Pack each pair as ``[prefix, chosen, rejected]`` (right-padded) with what the packed forward needs.

    ``{chosen,rejected}_source[b, j]`` is the row position whose hidden state predicts response token ``j``
    (``{chosen,rejected}_target``); the first token of both responses is predicted from the last prefix token.
    """
    image_inputs = vlm.instruction_inputs(vlm.image_inputs(images), list(prompts))
    counts = vlm.image_layouts(image_inputs)
    rows, segments = [], []
    sources = {"chosen": [], "rejected": []}  # per row: positions whose hidden state predicts each token
    targets = {"chosen": [], "rejected": []}  # per row: the response tokens
    for i, prompt in enumerate(prompts):
        prefix = vlm._prompt_ids(prompt, counts[i])
        chosen_ids, rejected_ids = vlm._response_ids(chosen[i], True), vlm._response_ids(rejected[i], True)
        if max_length is not None:
            if len(prefix) >= max_length:
                raise TetherError(
                    f"pair {i}: prompt with its visual tokens is {len(prefix)} tokens, max_length is {max_length}"
                )
            chosen_ids, rejected_ids = (
                chosen_ids[: max_length - len(prefix)],
                rejected_ids[: max_length - len(prefix)],
            )
        p, c = len(prefix), len(chosen_ids)
        rows.append(prefix + chosen_ids + rejected_ids)
        segments.append([0] * p + [1] * c + [2] * len(rejected_ids))
        sources["chosen"].append([p - 1 + j for j in range(c)])
        # the first rejected token follows the prefix, the others follow their predecessor in the rejected segment
        sources["rejected"].append([p - 1 if j == 0 else p + c + j - 1 for j in range(len(rejected_ids))])
        targets["chosen"].append(chosen_ids)
        targets["rejected"].append(rejected_ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), vlm.pad_token_id, dtype=torch.long)
    segment_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (row, seg) in enumerate(zip(rows, segments)):
        input_ids[i, : len(row)] = torch.tensor(row)
        segment_ids[i, : len(seg)] = torch.tensor(seg)
    out = {"input_ids": input_ids, "segment_ids": segment_ids, "image_inputs": image_inputs}
    for name in ("chosen", "rejected"):
        n = max(len(s) for s in sources[name])
        out[f"{name}_source"] = torch.zeros((len(rows), n), dtype=torch.long)
        out[f"{name}_target"] = torch.zeros((len(rows), n), dtype=torch.long)
        out[f"{name}_mask"] = torch.zeros((len(rows), n), dtype=torch.bool)
        for i, (source, target) in enumerate(zip(sources[name], targets[name])):
            out[f"{name}_source"][i, : len(source)] = torch.tensor(source, dtype=torch.long)
            out[f"{name}_target"][i, : len(target)] = torch.tensor(target, dtype=torch.long)
            out[f"{name}_mask"][i, : len(source)] = True
    return out


def block_causal_mask(segment_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive ``[batch, 1, seq, seq]`` mask: causal, no padding, rejected tokens blind to chosen tokens."""
    length = segment_ids.shape[1]
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = causal & (key >= 0) & (query >= 0) & ~((query == 2) & (key == 1))
    # padding rows attend to themselves: a fully masked row would give NaN in some kernels
    allowed |= torch.eye(length, dtype=torch.bool, device=segment_ids.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def packed_position_ids(vlm: VisionLanguageModel, packed: dict) -> torch.Tensor:
    """The model's own positions for the packed row, with the rejected segment moved back to follow the prefix."""
    segment_ids = packed["segment_ids"]
    positions = vlm.position_ids(packed["input_ids"], (segment_ids >= 0).long(), packed["image_inputs"])
    chosen_length = (segment_ids == 1).sum(dim=1, keepdim=True)
    return positions - (segment_ids == 2).long() * chosen_length.to(positions.device)


def packed_hidden_states(vlm: VisionLanguageModel, packed: dict) -> torch.Tensor:
    """Last-layer hidden states of a packed batch (``input_ids``, ``segment_ids``, ``image_inputs``) under its
    block mask and shifted positions; shared by DPO's pairs and HACL's shared visual prefix."""
    device = vlm.device
    input_ids = packed["input_ids"].to(device)
    segment_ids = packed["segment_ids"].to(device)
    image_inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed["image_inputs"].items()}
    vlm.check_image_tokens(ModelBatch(input_ids, (segment_ids >= 0).long(), segment_ids > 0, image_inputs))
    position_ids = packed_position_ids(vlm, {**packed, "input_ids": input_ids, "segment_ids": segment_ids})
    return vlm.decoder_hidden_states(
        input_ids=input_ids,
        attention_mask=vlm.packed_attention_mask(
            block_causal_mask(segment_ids, vlm.base_model.dtype), input_ids, position_ids
        ),
        position_ids=position_ids,
        **model_image_inputs(image_inputs),
        **vlm.extra_inputs(input_ids),
    )


def packed_pair_logprobs(
    vlm: VisionLanguageModel, packed: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed log-probs of chosen and rejected responses from one packed forward; also chosen token counts."""
    device = vlm.device
    hidden = packed_hidden_states(vlm, packed)
    sums = []
    for name in ("chosen", "rejected"):
        source, target, mask = (packed[f"{name}_{k}"].to(device) for k in ("source", "target", "mask"))
        rows = torch.arange(source.shape[0], device=device)[:, None].expand_as(source)
        logits = vlm.lm_head(hidden[rows[mask], source[mask]]).float()
        token_logps = torch.gather(F.log_softmax(logits, dim=-1), 1, target[mask][:, None]).squeeze(1)
        per_token = torch.zeros(mask.shape, dtype=token_logps.dtype, device=device).masked_scatter(
            mask, token_logps
        )
        sums.append(per_token.sum(dim=1))
    return sums[0], sums[1], packed["chosen_mask"].sum(dim=1).to(device)


def supports_packing(vlm: VisionLanguageModel) -> bool:
    implementation = vlm.base_model.config.get_text_config()._attn_implementation
    return implementation in PACKABLE_ATTENTION
