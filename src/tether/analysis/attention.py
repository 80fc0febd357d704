"""Attention share: how much of each generated token's attention goes to visual tokens vs text tokens.

NoiseBoost claims that noising visual tokens in training spreads attention more evenly between the image
and the language context. We measure it during generation: for every generated token and every layer, the
attention mass (averaged over heads) that the query producing the token puts on visual-token positions and
on text positions (prompt text and previously generated tokens; padding gets none). Tokens are grouped as
``correct`` or ``hallucinated`` object words (an object word whose object is / is not in the image's
ground truth; other words belong only to ``all``), and shares are averaged per layer and group.

The computation (``step_shares``, ``label_object_words``, ``aggregate_shares``) is pure and tested on
hand-built tensors; ``attention_share_report`` runs a model; ``plot_attention_shares`` compares models.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from tether.core.images import open_image
from tether.core.io import read_records, require_fields
from tether.models.decoding import DecodingSettings

GROUPS = ("all", "correct", "hallucinated")


@dataclass
class AttentionItem:
    """One probe: an image (PIL image), a prompt, and the objects truly in the image."""

    image: object
    prompt: str
    objects: list[str]


def step_shares(step_attentions: Sequence[torch.Tensor], visual_positions: torch.Tensor) -> torch.Tensor:
    """Visual and text attention share of one generation step, per layer: ``[layers, 2]``.

    ``step_attentions`` holds one ``[1, heads, queries, keys]`` tensor per layer (what ``generate`` returns
    for a step); the last query row is the position whose output is the generated token.
    ``visual_positions`` is a bool vector over (at least) the ``keys`` positions.
    """
    total = max(layer.shape[-1] for layer in step_attentions)
    shares = []
    for layer in step_attentions:
        row = layer[0, :, -1, :].float().mean(dim=0)  # [keys]
        # a sliding-window layer (Gemma 3) caches, and attends over, the last keys only
        visual = visual_positions[total - row.shape[0] : total].to(row.device)
        shares.append(torch.stack([row[visual].sum(), row[~visual].sum()]))
    return torch.stack(shares)


def _word(text: str) -> str:
    return re.sub(r"[^\w-]", "", text.lower())


def label_object_words(
    pieces: Sequence[str], objects: Sequence[str], word_to_object: Callable[[str], str | None]
) -> list[str | None]:
    """Label each generated token: ``correct``/``hallucinated`` on the first token of an object word, else None.

    ``pieces`` are the decoded texts of the generated tokens in order; a token starts a new word when its
    piece starts with whitespace (or is the first). A word is looked up lower-cased without punctuation;
    ``word_to_object`` maps it to an object name (synonyms included) or None for non-object words.
    """
    truth = {o.lower() for o in objects}
    starts = [i for i, p in enumerate(pieces) if i == 0 or p[:1].isspace() or pieces[i - 1][-1:].isspace()]
    labels: list[str | None] = [None] * len(pieces)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(pieces)
        obj = word_to_object(_word("".join(pieces[start:end])))
        if obj is not None:
            labels[start] = "correct" if obj.lower() in truth else "hallucinated"
    return labels


def aggregate_shares(shares: Sequence[torch.Tensor], labels: Sequence[str | None]) -> dict:
    """Per-layer mean visual/text shares per group from per-token ``[layers, 2]`` shares and token labels."""
    report = {}
    for group in GROUPS:
        chosen = [s for s, lab in zip(shares, labels) if group == "all" or lab == group]
        if chosen:
            mean = torch.stack(chosen).mean(dim=0)
            report[group] = {
                "tokens": len(chosen),
                "visual": mean[:, 0].tolist(),
                "text": mean[:, 1].tolist(),
            }
        else:
            report[group] = {"tokens": 0, "visual": [], "text": []}
    return report


def _token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """Decoded text each token adds (decoding prefixes keeps subword spacing right)."""
    pieces, previous = [], ""
    for i in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:i], skip_special_tokens=True)
        pieces.append(text[len(previous) :] if text.startswith(previous) else text)
        previous = text
    return pieces


@torch.no_grad()
def generation_shares(vlm, item: AttentionItem, settings) -> tuple[list[torch.Tensor], list[int]]:
    """Greedy/explicit-decoding generation of one item with attentions: per-token shares and token ids."""
    batch = vlm.encode([item.image], [item.prompt], padding_side="left")
    vlm.check_image_tokens(batch)
    output = vlm.model.generate(
        **batch.to(vlm.device).model_inputs(),
        **settings.generate_kwargs(),
        eos_token_id=vlm.stop_token_ids,
        pad_token_id=vlm.pad_token_id,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    prompt_length = batch.input_ids.shape[1]
    new_ids = output.sequences[0, prompt_length:].tolist()
    # visual positions only exist in the prompt; generated positions are text
    visual = torch.zeros(output.sequences.shape[1], dtype=torch.bool)
    visual[:prompt_length] = vlm.visual_token_mask(batch.input_ids[0])
    shares = [step_shares(step, visual) for step in output.attentions]
    keep = [i for i, t in enumerate(new_ids) if t not in (*vlm.stop_token_ids, vlm.pad_token_id)]
    return [shares[i] for i in keep], [new_ids[i] for i in keep]


def attention_share_report(
    vlm,
    items: Sequence[AttentionItem],
    word_to_object: Callable[[str], str | None],
    settings=None,
) -> dict:
    """Generate for every item (batch size 1, eager attention) and aggregate the shares per layer and group."""
    settings = settings or DecodingSettings()
    config = vlm.base_model.config
    previous = getattr(config, "_attn_implementation", None)
    vlm.base_model.set_attn_implementation("eager")  # fused kernels (sdpa, flash) return no attentions
    was_training = vlm.model.training
    vlm.model.eval()
    all_shares, all_labels, answers = [], [], []
    try:
        # shown on a terminal only (tqdm's disable=None): this library function has no progress switch
        for item in tqdm(items, desc="attention", unit="item", disable=None):
            shares, ids = generation_shares(vlm, item, settings)
            pieces = _token_pieces(vlm.tokenizer, ids)
            labels = label_object_words(pieces, item.objects, word_to_object)
            all_shares += shares
            all_labels += labels
            answers.append(
                {
                    "prompt": item.prompt,
                    "answer": "".join(pieces).strip(),
                    "correct": [_word(p) for p, lab in zip(pieces, labels) if lab == "correct"],
                    "hallucinated": [_word(p) for p, lab in zip(pieces, labels) if lab == "hallucinated"],
                }
            )
    finally:
        vlm.model.train(was_training)
        if previous is not None:
            vlm.base_model.set_attn_implementation(previous)
    report = aggregate_shares(all_shares, all_labels)
    return {
        "model": vlm.path,
        "items": len(items),
        "layers": len(all_shares[0]) if all_shares else 0,
        "decoding": settings.to_dict(),
        "groups": report,
        "answers": answers,
    }


def plot_attention_shares(reports: dict[str, dict], out_png) -> None:
    """Visual-token attention share per layer, one panel per group, one line per model (e.g. before/after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(GROUPS), figsize=(4.2 * len(GROUPS), 3.4), sharey=True)
    for ax, group in zip(axes, GROUPS):
        for label, report in reports.items():
            g = report["groups"][group]
            if g["tokens"]:
                ax.plot(range(len(g["visual"])), g["visual"], marker="o", label=f"{label} (n={g['tokens']})")
        ax.set_title(f"{group} tokens")
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no such tokens", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("attention share on visual tokens")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def load_attention_items(path, images_root) -> list[AttentionItem]:
    """JSONL/JSON of ``{"image", "prompt", "objects": [...]}``; images opened relative to ``images_root``."""
    items = []
    for line, raw in read_records(path):
        require_fields(raw, {"image": str, "prompt": str, "objects": list}, path, line)
        image = open_image(images_root, raw["image"], source=path, line=line)
        items.append(AttentionItem(image, raw["prompt"], [str(o) for o in raw["objects"]]))
    return items


def word_map_lookup(word_map: dict[str, str]) -> Callable[[str], str | None]:
    """A ``word_to_object`` callable from a ``{word: object}`` dict (words matched lower-cased)."""
    lowered = {w.lower(): o for w, o in word_map.items()}
    return lowered.get
