"""The study report's numbers: per variant and metric the mean over seeds with its 95% interval (Student t
over seeds, ``tether.core.stats``; with one seed, no interval is claimed) and the paired difference against
the baseline (same seed, same world) with its interval, the verdict it earns, and how each metric is shown."""

from __future__ import annotations

from tether.core.document import Cell, Table
from tether.core.stats import mean_interval

# (metric key, label, True if higher is better / False if lower / None if neither)
HEADLINE = [
    ("pope_adversarial/f1", "POPE adv. F1", True),
    ("pope_adversarial/yes_ratio", "POPE adv. yes-ratio", None),
    ("chair/chair_i", "CHAIR_i", False),
    ("chair/chair_s", "CHAIR_s", False),
    ("mmhal/average_score", "MMHal score (0–6)", True),
    ("mmhal/hallucination_rate", "MMHal halluc. rate", False),
    ("shr/shr", "SHR", False),
]
SECONDARY = [
    ("pope_random/accuracy", "POPE random acc.", True),
    ("pope_random/f1", "POPE random F1", True),
    ("pope_popular/accuracy", "POPE popular acc.", True),
    ("pope_popular/f1", "POPE popular F1", True),
    ("pope_adversarial/accuracy", "POPE adv. acc.", True),
    ("chair/recall", "CHAIR recall", True),
    ("length/description_words", "description length (words)", None),
]
BENCHMARK_METRICS = HEADLINE + SECONDARY
# shown as they are (not as percentages of a fraction), and those shown with more decimals
RAW_METRICS = ("mmhal/average_score", "length/", "gap/", "ppo/", "ssl/", "/tokens", "reward/held_out_pairs")
PRECISE_METRICS = {
    "mmhal/average_score": 2,
    "gap/": 3,
    "ppo/kl": 3,
    "ppo/reward": 3,
    "ssl/mean_confidence": 3,
}
COUNT_METRICS = (
    "/tokens",
    "reward/held_out_pairs",
    "ssl/unlabeled_items",
    "ssl/pseudo_labels_kept",
    "ppo/steps",
)


def paired(metrics: dict, a: tuple[str, str], b: tuple[str, str]) -> tuple[float, float | None] | None:
    """Mean ± interval of ``a − b`` over the seeds having both, each a ``(variant, metric key)``."""
    diffs = [
        metrics[s][a[0]][a[1]] - metrics[s][b[0]][b[1]]
        for s in sorted(metrics)
        if a[1] in metrics[s].get(a[0], {}) and b[1] in metrics[s].get(b[0], {})
    ]
    return mean_interval(diffs) if diffs else None


def summarise(metrics: dict, keys: list[str] | None = None) -> dict:
    """{variant: {metric: (mean, half, diff_mean, diff_half)}} from {seed: {variant: {metric: value}}}.

    ``keys``: the metrics to summarise (default: every metric any variant has); the difference is against
    the baseline's same metric on the same seed (None where the baseline lacks it).
    """
    seeds = sorted(metrics)
    variants = list(dict.fromkeys(v for s in seeds for v in metrics[s]))
    if keys is None:
        keys = list(dict.fromkeys(k for s in seeds for v in variants for k in metrics[s].get(v, {})))
    out = {}
    for variant in variants:
        out[variant] = {}
        for key in keys:
            values = [metrics[s][variant][key] for s in seeds if key in metrics[s].get(variant, {})]
            if not values:
                continue
            mean, half = mean_interval(values)
            diff = paired(metrics, (variant, key), ("baseline", key)) or (None, None)
            out[variant][key] = (mean, half, *diff)
    return out


def verdict(diff_mean, diff_half, higher_better) -> str:
    if diff_mean is None or higher_better is None:
        return ""
    if diff_half is None:
        return "one seed: no claim"
    low, high = diff_mean - diff_half, diff_mean + diff_half
    if low > 0 or high < 0:
        good = (low > 0) == higher_better
        return "helps" if good else "hurts"
    return "no significant change"


def is_percent(key: str) -> bool:
    return key.endswith("probe_accuracy") or not any(part in key for part in RAW_METRICS)


def fmt(value, half=None, key: str = "", signed: bool = False) -> str:
    """``61.2 ± 3.4``: a fraction as percent (``key`` says which metric), other values with their precision."""
    if value is None:
        return "–"
    scale = 100 if is_percent(key) else 1
    digits = next((d for part, d in PRECISE_METRICS.items() if part in key and not is_percent(key)), 1)
    if any(part in key for part in COUNT_METRICS):
        digits = 0
    text = f"{value * scale:+.{digits}f}" if signed else f"{value * scale:.{digits}f}"
    return text + (f" ± {half * scale:.{digits}f}" if half is not None else "")


def metric_cell(cells: dict, key: str, better, variant: str) -> Cell:
    """A variant's mean ± interval, and for a method its paired difference against the baseline."""
    if key not in cells:
        return Cell("–")
    mean, half, diff, diff_half = cells[key]
    cell = Cell(fmt(mean, half, key))
    if variant != "baseline" and diff is not None:
        difference(cell, (diff, diff_half), key, better)
    return cell


def difference(cell: Cell, diff: tuple, key: str, better) -> Cell:
    """Add a paired difference and its verdict to ``cell`` (a single seed's verdict is left unsaid: the
    report says once that one seed makes no claim)."""
    word = verdict(*diff, better)
    cell.verdict = "" if word == "one seed: no claim" else word
    cell.note = fmt(*diff, key, signed=True) + (f" {cell.verdict}" if cell.verdict else "")
    return cell


def variant_table(
    summary: dict, metrics: list[tuple[str, str, bool | None]], variants=None, levels: dict | None = None
) -> Table:
    """One row per variant, one column per metric; ``levels`` adds a last column (smoke or measurement)."""
    variants = [v for v in (variants or summary) if v in summary]
    extra = ["level"] if levels else []
    return Table(
        ["variant"] + [label for _, label, _ in metrics] + extra,
        [
            [v]
            + [metric_cell(summary[v], key, better, v) for key, _, better in metrics]
            + ([levels.get(v, "")] if levels else [])
            for v in variants
        ],
    )


def findings(summary: dict, metrics=BENCHMARK_METRICS) -> list[str]:
    """One honest sentence per method: where it helps, hurts, or makes no significant difference.

    With a single seed there is no interval, so no method gets a verdict: one sentence says so.
    """
    methods = {v: cells for v, cells in summary.items() if v != "baseline"}
    single_seed = any(
        cells[k][2] is not None and cells[k][3] is None for cells in methods.values() for k in cells
    )
    if single_seed:
        return [
            "One seed: no interval exists, so no method's difference against the baseline is a claim "
            "(the differences are in the tables); run the `full` preset for verdicts."
        ]
    lines = []
    for variant, cells in methods.items():
        helps, hurts = [], []
        for key, label, better in metrics:
            if key in cells:
                word = verdict(cells[key][2], cells[key][3], better)
                (helps if word == "helps" else hurts if word == "hurts" else []).append(label)
        if helps or hurts:
            text = (
                f"**{variant}**: helps on {', '.join(helps) or 'nothing'}; "
                f"hurts on {', '.join(hurts) or 'nothing'}; does not help on the other benchmark metrics."
            )
        else:
            text = f"**{variant}**: does not help: no benchmark metric changed beyond its 95% interval."
        lines.append(text)
    return lines
