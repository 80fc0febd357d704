"""The study report's analysis sections: semi-supervised NoiseBoost, modality gap, attention share, reward model.

Each reads the per-seed metrics that the study's analysis stages put beside the benchmark metrics
(``tether.study.analyses``) and returns a ``Section`` plus one finding sentence; a section whose variants are
not in the study is left out.
"""

from __future__ import annotations

from pathlib import Path

from tether.core.document import Cell, Section, Table
from tether.core.stats import mean_interval
from tether.study.statistics import HEADLINE, difference, fmt, paired, verdict

GAP_ROWS = [  # (metric, label, HACL's claimed direction: True = higher)
    ("centroid_distance", "image–caption centroid distance", False),
    ("matched_cosine", "cosine(image, its caption)", True),
    ("negative_cosine", "cosine(image, hallucinated caption)", False),
    ("probe_accuracy", "probe accuracy: caption vs hallucinated", True),
]
GAP_STAGES = [("align", "stage 1 (align)"), ("final", "final (after SFT)")]
ATTENTION_GROUPS = [
    ("correct", "correct object words"),
    ("hallucinated", "hallucinated object words"),
    ("all", "all tokens"),
]


def analysis_sections(metrics: dict, out_dir: Path) -> tuple[list[Section], list[str]]:
    """The sections whose variants the study ran, and one finding per section."""
    sections, notes = [], []
    for build in (ssl_section, gap_section, attention_section, reward_section):
        built = build(metrics, Path(out_dir))
        if built is not None:
            sections.append(built[0])
            notes.append(built[1])
    return sections, notes


def _values(metrics: dict, variant: str, key: str) -> tuple[float, float | None] | None:
    values = [metrics[s][variant][key] for s in sorted(metrics) if key in metrics[s].get(variant, {})]
    return mean_interval(values) if values else None


def _cell(stat, key: str, diff=None, better=None) -> Cell:
    if stat is None:
        return Cell("–")
    cell = Cell(fmt(*stat, key))
    if diff is not None and diff[0] is not None:
        difference(cell, diff, key, better)
    return cell


def _or_none(stat):
    """A missing statistic as (None, None), which ``fmt`` shows as "–" and ``verdict`` leaves unjudged."""
    return stat if stat is not None else (None, None)


def _claim(diff, claimed_higher: bool) -> str:
    """Whether a measured difference goes the way the paper claims, and whether that is beyond the interval."""
    mean, half = diff
    if mean is None:
        return "not measured"
    if mean == 0:
        direction = "no change"
    else:
        direction = "the claimed direction" if (mean > 0) == claimed_higher else "against the claim"
    word = verdict(mean, half, claimed_higher)
    significance = {"helps": "beyond its 95% interval", "hurts": "beyond its 95% interval"}.get(word, word)
    return f"{direction}; {significance}"


def _figure(path: Path, name: str, caption: str):
    return (name, caption, path.read_bytes()) if path.is_file() else None


def _seeds_note(metrics: dict) -> str:
    return " With one seed no interval exists, so nothing here is a claim." if len(metrics) < 2 else ""


# ---- semi-supervised NoiseBoost -------------------------------------------------------------------------


def ssl_section(metrics: dict, out_dir: Path):
    variants = ("sft_half", "noiseboost_ssl")
    if not all(any(v in m for m in metrics.values()) for v in variants):
        return None
    gaps = {
        v: {key: paired(metrics, (v, key), ("baseline", key)) for key, _, _ in HEADLINE} for v in variants
    }
    rows = []
    for variant in variants:
        row = [variant]
        for key, _, better in HEADLINE:
            gap = gaps[variant][key]
            word = "" if gap is None else verdict(*gap, better).replace("one seed: no claim", "")
            row.append(Cell("–") if gap is None else Cell(fmt(*gap, key, signed=True), word, word))
        rows.append(row)
    comparison, better_on, worse_on, same_on = ["noiseboost_ssl − sft_half"], [], [], []
    significant = {"SSL better": [], "SSL worse": []}
    for key, label, better in HEADLINE:
        stat = paired(metrics, ("noiseboost_ssl", key), ("sft_half", key))
        if stat is None:
            comparison.append(Cell("–"))
            continue
        word = {"helps": "SSL better", "hurts": "SSL worse"}.get(verdict(*stat, better), "")
        comparison.append(Cell(fmt(*stat, key, signed=True), word, word))
        if better is not None:
            gain = stat[0] if better else -stat[0]
            (better_on if gain > 0 else worse_on if gain < 0 else same_on).append(label)
        if word:
            significant[word].append(label)
    rows.append(comparison)
    kept = _values(metrics, "noiseboost_ssl", "ssl/pseudo_labels_kept")
    items = _values(metrics, "noiseboost_ssl", "ssl/unlabeled_items")
    confidence = _values(metrics, "noiseboost_ssl", "ssl/mean_confidence")
    pseudo = (
        f" The teacher pseudo-labelled {items[0]:.0f} items per seed on average and kept {kept[0]:.0f} "
        f"(mean confidence {confidence[0]:.3f})."
        if kept and items and confidence
        else ""
    )
    text = (
        "NoiseBoost's semi-supervised claim: with labels for half of the training images, a noised student "
        "learning from the teacher's pseudo-labels of the other half (and of the unlabeled split) gets closer "
        "to the 100%-label baseline than SFT on the labeled half alone. Rows 1–2: each model's gap to the "
        "baseline (model − baseline, paired by seed; percentage points, MMHal score in points); last row: "
        "SSL − sft_half, with 'SSL better' where SSL is better beyond the 95% interval."
        + pseudo
        + _seeds_note(metrics)
    )
    listed = "; ".join(
        f"{label} {fmt(*gaps['sft_half'][key], key, signed=True)} → {fmt(*gaps['noiseboost_ssl'][key], key, signed=True)}"
        for key, label, _ in HEADLINE
        if gaps["sft_half"][key] and gaps["noiseboost_ssl"][key]
    )
    counted = len(better_on) + len(worse_on) + len(same_on)
    finding = (
        f"**noiseboost_ssl vs sft_half**, gap to the 100%-label baseline (sft_half → SSL): {listed}. SSL is "
        f"better than sft_half (nearer to, or past, the baseline) on {len(better_on)} of {counted} metrics "
        f"({', '.join(better_on) or 'none'}), worse on {', '.join(worse_on) or 'none'}"
        + (f", equal on {', '.join(same_on)}" if same_on else "")
        + (
            f"; beyond the 95% interval: better on {', '.join(significant['SSL better']) or 'none'}, "
            f"worse on {', '.join(significant['SSL worse']) or 'none'}."
            if len(metrics) > 1
            else " (one seed: no claim)."
        )
    )
    table = Table(["gap to baseline"] + [label for _, label, _ in HEADLINE], rows)
    return Section("Semi-supervised NoiseBoost vs 50% labels", text, [table]), finding


# ---- modality gap ---------------------------------------------------------------------------------------


def gap_section(metrics: dict, out_dir: Path):
    if not any("gap/final/centroid_distance" in m.get("hacl", {}) for m in metrics.values()):
        return None
    rows = []
    for stage, stage_label in GAP_STAGES:
        for metric, label, better in GAP_ROWS:
            key = f"gap/{stage}/{metric}"
            diff = paired(metrics, ("hacl", key), ("baseline", key))
            rows.append(
                [
                    f"{stage_label}: {label}",
                    _cell(_values(metrics, "baseline", key), key),
                    _cell(_values(metrics, "hacl", key), key, diff, better),
                ]
            )
    text = (
        "HACL's claim (its Figure 1): contrastive alignment with hallucinated captions as hard negatives "
        "narrows the gap between image and text representations and pushes hallucinated captions away from "
        "true ones. Measured on held-out test images (their captions and rule-written hallucinated rewrites), "
        "on L2-normalised last-token representations; centroid distance is in units of the unit sphere "
        "(0–2), cosines in −1…1, probe accuracy is the held-out accuracy (percent; 50 = chance) of a linear probe telling captions from hallucinated ones. "
        "Under HACL: its value, then its paired difference against the baseline." + _seeds_note(metrics)
    )
    key = "gap/final/centroid_distance"
    final = _or_none(paired(metrics, ("hacl", key), ("baseline", key)))
    align = _or_none(
        paired(metrics, ("hacl", "gap/align/centroid_distance"), ("baseline", "gap/align/centroid_distance"))
    )
    probe = _or_none(
        paired(metrics, ("hacl", "gap/final/probe_accuracy"), ("baseline", "gap/final/probe_accuracy"))
    )
    finding = (
        f"**HACL modality gap**: centroid distance hacl − baseline {fmt(*align, 'gap/', signed=True)} "
        f"after stage 1 ({_claim(align, False)}) and {fmt(*final, 'gap/', signed=True)} for the final model "
        f"({_claim(final, False)}); probe accuracy (final) {fmt(*probe, signed=True)} points "
        f"({_claim(probe, True)})."
    )
    figure = _figure(
        out_dir / "seed0" / "analysis" / "gap" / "gap.png",
        "gap.png",
        "Seed 0, held-out test images: 2-D PCA of each image's representation (blue), its caption's (green) "
        "and its hallucinated caption's (red); panels: baseline and HACL, after stage 1 and after SFT. Look "
        "for blue and green clouds closer together under HACL than under the baseline, and red apart from "
        "green (the numbers above each panel are the same measures as the table).",
    )
    table = Table(["measure", "baseline", "hacl (hacl − baseline)"], rows)
    return Section("Modality gap (HACL)", text, [table], figure=figure), finding


# ---- attention share ------------------------------------------------------------------------------------


def attention_section(metrics: dict, out_dir: Path):
    if not any("attention/all/mean" in m.get("noiseboost_sft", {}) for m in metrics.values()):
        return None
    layers = sorted(
        {
            int(k.rsplit("layer", 1)[1])
            for m in metrics.values()
            for k in m.get("baseline", {})
            if k.startswith("attention/all/layer")
        }
    )
    columns = [f"layer{i}" for i in layers] + ["mean"]
    rows = []
    for group, label in ATTENTION_GROUPS:
        for variant in ("baseline", "noiseboost_sft"):
            row = [
                f"{label}: {variant}",
                _cell(_values(metrics, variant, f"attention/{group}/tokens"), "/tokens"),
            ]
            for column in columns:
                key = f"attention/{group}/{column}"
                diff = paired(metrics, (variant, key), ("baseline", key)) if variant != "baseline" else None
                row.append(_cell(_values(metrics, variant, key), key, diff, True))
            rows.append(row)
    text = (
        "NoiseBoost's claim: noise on the visual tokens during training makes the model rely on them more "
        "(attention spread more evenly between image and text). Measured while each model describes the same "
        "held-out test images (greedy): the share of attention (percent, averaged over heads) that a "
        "generated token's query puts on visual tokens, per layer, for object words that are in the image "
        "(correct), not in it (hallucinated, from the scene graph), and for all tokens; tokens = generated "
        "tokens per group (mean per seed). Under noiseboost_sft: its difference against the baseline."
        + _seeds_note(metrics)
    )
    parts = []
    for group, label in ATTENTION_GROUPS:
        key = f"attention/{group}/mean"
        diff = paired(metrics, ("noiseboost_sft", key), ("baseline", key))
        if diff:
            parts.append(f"{label} {fmt(*diff, signed=True)} points ({_claim(diff, True)})")
    finding = (
        "**NoiseBoost attention share** on visual tokens (mean over layers, noiseboost_sft − baseline): "
        + ("; ".join(parts) or "no object words were generated")
        + "."
    )
    figure = _figure(
        out_dir / "seed0" / "analysis" / "attention" / "attention.png",
        "attention.png",
        "Seed 0: visual-token attention share per layer (y axis: fraction of the generated token's attention "
        "on visual tokens; n = tokens). Look for the NoiseBoost line above the baseline's, above all on "
        "hallucinated object words; a panel without lines had no such tokens.",
    )
    return Section(
        "Attention share on visual tokens (NoiseBoost)",
        text,
        [Table(["group: model", "tokens"] + columns, rows)],
        figure=figure,
    ), finding


# ---- reward model and PPO ------------------------------------------------------------------------------


def reward_section(metrics: dict, out_dir: Path):
    if not any("reward/accuracy_facts" in m.get("fact_rlhf", {}) for m in metrics.values()):
        return None
    facts = _values(metrics, "fact_rlhf", "reward/accuracy_facts")
    vanilla = _values(metrics, "fact_rlhf", "reward/accuracy_vanilla") or (None, None)
    diff = _or_none(
        paired(metrics, ("fact_rlhf", "reward/accuracy_facts"), ("fact_rlhf", "reward/accuracy_vanilla"))
    )
    pairs = _values(metrics, "fact_rlhf", "reward/held_out_pairs")
    reward_table = Table(
        ["reward model", "held-out pair accuracy (%)"],
        [
            ["with facts (used by PPO)", _cell(facts, "reward/accuracy_facts", diff, True)],
            ["vanilla (no facts)", _cell(vanilla, "reward/accuracy_vanilla")],
        ],
    )
    ppo_columns = [
        ("ppo/kl_last", "KL to the reference, last step"),
        ("ppo/reward_first", "reward, first step"),
        ("ppo/reward_last", "reward, last step"),
        ("ppo/response_length_first", "response length, first step = baseline (tokens)"),
        ("ppo/response_length_last", "response length, last step (tokens)"),
    ]
    words = "length/description_words"
    ppo_table = Table(
        ["PPO (mean over seeds)", "value"],
        [[label, _cell(_values(metrics, "fact_rlhf", key), key)] for key, label in ppo_columns]
        + [
            ["test description length, baseline (words)", _cell(_values(metrics, "baseline", words), words)],
            [
                "test description length, fact_rlhf (words)",
                _cell(
                    _values(metrics, "fact_rlhf", words),
                    words,
                    paired(metrics, ("fact_rlhf", words), ("baseline", words)),
                ),
            ],
        ],
    )
    text = (
        "Fact-RLHF's claim: a reward model whose prompt carries the image's facts judges hallucination better "
        "than a vanilla one. Both are trained on the same train-image pairs and measured on pairs built the same "
        f"way from held-out val images ({pairs[0]:.0f} pairs per seed on average): accuracy = share of pairs "
        "where the chosen response gets the higher reward (50% = chance); under 'with facts', the paired "
        "difference against vanilla. Below: PPO's own log (mean over seeds) — the first rollout comes from the "
        "starting policy, so its response length is the baseline's on the same prompts. This is no reward-"
        "hacking check: a growing length or reward with a flat benchmark score would be the sign to look for."
        + _seeds_note(metrics)
    )
    finding = (
        f"**Fact-RLHF reward model**: held-out accuracy {fmt(*facts)} with facts vs {fmt(*vanilla)} without "
        f"(difference {fmt(*diff, signed=True)} points: {_claim(diff, True)})."
    )
    return Section("Reward model and PPO (Fact-RLHF)", text, [reward_table, ppo_table]), finding
