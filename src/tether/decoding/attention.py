"""Reading and editing a language model's attention, on every family, through transformers' AttentionInterface.

PAI amplifies the attention that the last query pays to image keys (an edit of the pre-softmax scores) and
OPERA reads the last layer's attention map. Neither is reachable through ``output_attentions`` with the
fused (sdpa) kernels, and the papers' repositories monkey-patch one family's attention ``forward``. Here
both go through one attention function registered with transformers' ``AttentionInterface`` under
``tether_<implementation>`` (``tether_sdpa``, ``tether_eager``), with the wrapped implementation's mask
function registered under the same name in ``AttentionMaskInterface`` (so masks are built exactly as
before). ``attention_hooks(vlm, hooks)`` switches the language model's config to it for a ``with`` block;
the vision tower and Q-Former keep theirs.

The registered function calls the wrapped implementation unchanged, except in the layers that ``hooks``
names:

- ``hooks.edit`` (PAI): in layers ``edit.layers``, the attention is computed eagerly (scores, mask, edit,
  softmax in float32, values) so that the scores of the chosen query row can be edited before the softmax;
- ``hooks.record_layer`` (OPERA): in that layer, the output is the wrapped implementation's, and the
  attention probabilities of the last query row are computed beside it and appended to ``hooks.recorded``.

Key positions: a layer's keys are the last ``key_length`` positions of the sequence (fewer than all in a
sliding-window layer whose cache keeps only the window). ``hooks.sequence_length`` is the whole sequence's
length, kept by a forward pre-hook on the decoder, so that ``image_keys`` (a mask over the sequence's first
positions) lines up with the keys.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from tether.core.errors import TetherError

PREFIX = "tether_"
WRAPPED = ("sdpa", "eager")


@dataclass
class ImageAttentionEdit:
    """PAI's edit in ``layers``: the pre-softmax score ``a`` of the edited query row on an image key becomes
    ``a + alpha * |a|``. ``image_keys[b, j]`` marks image positions among the sequence's first positions (later
    positions are generated text); ``query_rows[b]`` is the edited query row of each sample in the current
    forward (None: the last row, the one that predicts the next token)."""

    layers: frozenset[int]
    alpha: float
    image_keys: torch.Tensor
    query_rows: torch.Tensor | None = None


@dataclass
class AttentionHooks:
    edit: ImageAttentionEdit | None = None
    record_layer: int | None = None
    recorded: list[torch.Tensor] = field(default_factory=list)  # [batch, heads, sequence_length] each
    sequence_length: int = 0


_active: list[AttentionHooks] = []


def hooked_attention(module, query, key, value, attention_mask, **kwargs):
    """The registered attention function: ``query`` ``[batch, heads, q, dim]``, ``key``/``value``
    ``[batch, kv_heads, k, dim]``; returns ``(output [batch, q, heads, dim], weights or None)``."""
    implementation = module.config._attn_implementation.removeprefix(PREFIX)
    hooks = _active[-1] if _active else None
    layer = getattr(module, "layer_idx", None)
    if hooks is not None and hooks.edit is not None and layer in hooks.edit.layers:
        return edited_attention(module, query, key, value, attention_mask, hooks, **kwargs)
    if implementation == "eager":
        wrapped = sys.modules[type(module).__module__].eager_attention_forward
    else:
        wrapped = ALL_ATTENTION_FUNCTIONS[implementation]
    output = wrapped(module, query, key, value, attention_mask, **kwargs)
    if hooks is not None and layer is not None and layer == hooks.record_layer:
        rows = _scores(module, query[:, :, -1:], key, attention_mask, **kwargs).softmax(dim=-1)[:, :, 0]
        hooks.recorded.append(_left_padded(rows, hooks.sequence_length))
    return output


for _name in WRAPPED:
    ALL_ATTENTION_FUNCTIONS.register(PREFIX + _name, hooked_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PREFIX + _name, ALL_MASK_ATTENTION_FUNCTIONS[_name])


def _scores(
    module, query, key, attention_mask, scaling=None, softcap=None, edit=None, **kwargs
) -> torch.Tensor:
    """Masked pre-softmax scores ``[batch, heads, q, k]`` in float32, as eager attention computes them;
    ``edit(scores)`` applies before the mask, so that masked keys stay masked whatever the edit does."""
    heads = query.shape[1]
    key = key.repeat_interleave(heads // key.shape[1], dim=1)  # grouped-query attention
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query.float(), key.float().transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if edit is not None:
        scores = edit(scores)
    # the most negative float, not -inf: a padding query that sees no key gets a uniform row, not NaNs
    # (eager attention's convention), whose zero weights would turn NaN values into NaN outputs
    blocked = torch.finfo(scores.dtype).min
    if attention_mask is not None:
        mask = attention_mask[:, :, -query.shape[2] :, : key.shape[2]]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, blocked)
        else:
            scores = scores + mask.float()
    elif query.shape[2] > 1:  # sdpa's mask function leaves a plain causal mask to the kernel
        q, k = query.shape[2], key.shape[2]
        future = torch.ones(q, k, dtype=torch.bool, device=scores.device).triu(k - q + 1)
        scores = scores.masked_fill(future, blocked)
    return scores


def amplify_image_scores(scores: torch.Tensor, image_keys: torch.Tensor, rows: torch.Tensor, alpha: float):
    """PAI's edit (Liu et al. 2024; ``attention.py`` of LALBJ/PAI): ``a + alpha * |a|`` on the image keys of
    query row ``rows[b]`` of each sample. ``scores`` ``[batch, heads, q, k]``; ``image_keys`` ``[batch, k]``."""
    edited = scores.clone()
    batch = torch.arange(scores.shape[0], device=scores.device)
    row = edited[batch, :, rows]  # [batch, heads, k]
    amplified = row + alpha * row.abs()
    edited[batch, :, rows] = torch.where(image_keys[:, None, :], amplified, row)
    return edited


def edited_attention(module, query, key, value, attention_mask, hooks: AttentionHooks, dropout=0.0, **kwargs):
    """Eager attention with PAI's edit. The repo edits after adding the mask; on the keys a query sees the
    mask adds 0, and here masked keys stay masked even for alpha > 1 (where ``a + alpha |a|`` of a masked
    score would turn positive)."""
    edit = hooks.edit
    image_keys = _over_sequence(edit.image_keys.to(query.device), hooks.sequence_length)[:, -key.shape[2] :]
    rows = edit.query_rows
    if rows is None:
        rows = torch.full((query.shape[0],), query.shape[2] - 1, dtype=torch.long)

    def amplify(scores):
        return amplify_image_scores(scores, image_keys, rows.to(scores.device), edit.alpha)

    scores = _scores(module, query, key, attention_mask, edit=amplify, **kwargs)
    weights = scores.softmax(dim=-1).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _over_sequence(image_keys: torch.Tensor, length: int) -> torch.Tensor:
    """The prompt's image-key mask ``[batch, prompt]`` over a sequence of ``length`` positions (the prompt, then
    generated tokens, which are never image keys)."""
    if image_keys.shape[-1] >= length:
        return image_keys[..., :length]
    return torch.nn.functional.pad(image_keys, (0, length - image_keys.shape[-1]), value=False)


def _left_padded(rows: torch.Tensor, length: int) -> torch.Tensor:
    """Attention rows over a layer's keys (the sequence's last positions) on all ``length`` positions."""
    return torch.nn.functional.pad(rows, (length - rows.shape[-1], 0))


@contextlib.contextmanager
def suspended():
    """Plain attention inside the block, within ``attention_hooks`` (PAI's image-free branch)."""
    _active.append(AttentionHooks())
    try:
        yield
    finally:
        _active.pop()


def text_config(vlm):
    return vlm.base_model.config.get_text_config()


def decoder_layers(vlm) -> int:
    return text_config(vlm).num_hidden_layers


def _decoder(vlm) -> torch.nn.Module:
    """The language model's decoder: the module that runs the layers of the text config."""
    config = text_config(vlm)
    for module in vlm.base_model.modules():
        if getattr(module, "config", None) is config and isinstance(
            getattr(module, "layers", None), torch.nn.ModuleList
        ):
            return module
    raise TetherError(f"{vlm.path}: no decoder found for the text config of {type(vlm.base_model).__name__}")


@contextlib.contextmanager
def attention_hooks(vlm, hooks: AttentionHooks):
    """Run the language model's attention through ``hooked_attention`` with ``hooks`` inside the block."""
    config = text_config(vlm)
    before = config._attn_implementation
    wrapped = before.removeprefix(PREFIX)
    if wrapped not in WRAPPED:
        raise TetherError(
            f"attention edits and read-outs need the sdpa or eager attention; {vlm.path} uses {before!r}"
        )

    def keep_length(module, args, kwargs):
        if not _active:
            return
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        tokens = kwargs.get("inputs_embeds")
        tokens = tokens if tokens is not None else kwargs.get("input_ids", args[0] if args else None)
        past = cache.get_seq_length() if cache is not None else 0
        _active[-1].sequence_length = past + tokens.shape[1]

    handle = _decoder(vlm).register_forward_pre_hook(keep_length, with_kwargs=True)
    config._attn_implementation = PREFIX + wrapped
    _active.append(hooks)
    try:
        yield hooks
    finally:
        _active.pop()
        config._attn_implementation = before
        handle.remove()
