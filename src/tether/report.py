"""The study report: ``report.md`` and a self-contained ``report.html`` (figures embedded).

For each variant and metric: the mean over seeds with its 95% interval (Student t over seeds; with one seed,
no interval is claimed), and the paired difference against the baseline (same seed, same world) with its
interval. A method "helps" on a metric only when the whole interval of its paired difference lies on the
good side of zero; the report says so in words, and says so too when it does not help.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

# (metric key, label, True if higher is better)
HEADLINE = [
    ("pope_random/accuracy", "POPE random acc", True),
    ("pope_random/f1", "POPE random F1", True),
    ("pope_popular/f1", "POPE popular F1", True),
    ("pope_adversarial/f1", "POPE adversarial F1", True),
    ("pope_adversarial/yes_ratio", "POPE adv. yes-ratio", None),
    ("chair/chair_i", "CHAIR_i", False),
    ("chair/chair_s", "CHAIR_s", False),
    ("mmhal/average_score", "MMHal score", True),
    ("mmhal/hallucination_rate", "MMHal halluc. rate", False),
    ("shr/shr", "SHR", False),
]

# two-sided 97.5% Student t quantiles by degrees of freedom
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_interval(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of its 95% t-interval (None with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def summarise(metrics: dict) -> dict:
    """{variant: {metric: (mean, half, diff_mean, diff_half)}} from {seed: {variant: {metric: value}}}."""
    seeds = sorted(metrics)
    variants = list(next(iter(metrics.values())))
    out = {}
    for variant in variants:
        out[variant] = {}
        for key, _, _ in HEADLINE:
            values = [metrics[s][variant][key] for s in seeds if key in metrics[s].get(variant, {})]
            if not values:
                continue
            diffs = [
                metrics[s][variant][key] - metrics[s]["baseline"][key]
                for s in seeds
                if key in metrics[s].get(variant, {}) and key in metrics[s].get("baseline", {})
            ]
            mean, half = mean_interval(values)
            diff_mean, diff_half = mean_interval(diffs) if diffs else (None, None)
            out[variant][key] = (mean, half, diff_mean, diff_half)
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


def _fmt(value, half=None, percent=True) -> str:
    if value is None:
        return "–"
    scale = 100 if percent else 1
    text = f"{value * scale:.1f}"
    return text + (f" ± {half * scale:.1f}" if half is not None else "")


def _is_percent(key: str) -> bool:
    return not key.startswith("mmhal/average")


def markdown_table(summary: dict) -> str:
    head = "| variant | " + " | ".join(label for _, label, _ in HEADLINE) + " |"
    rule = "|---" * (len(HEADLINE) + 1) + "|"
    rows = [head, rule]
    for variant, cells in summary.items():
        row = [variant]
        for key, _, better in HEADLINE:
            if key not in cells:
                row.append("–")
                continue
            mean, half, diff, diff_half = cells[key]
            text = _fmt(mean, half, _is_percent(key))
            if variant != "baseline" and diff is not None:
                sign = "+" if diff >= 0 else ""
                word = verdict(diff, diff_half, better)
                text += f" ({sign}{_fmt(diff, diff_half, _is_percent(key))}{'; ' + word if word else ''})"
            row.append(text)
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def findings(summary: dict) -> list[str]:
    """One honest sentence per method: where it helps, hurts, or makes no significant difference."""
    lines = []
    for variant, cells in summary.items():
        if variant == "baseline":
            continue
        helps, hurts = [], []
        for key, label, better in HEADLINE:
            if key in cells:
                word = verdict(cells[key][2], cells[key][3], better)
                (helps if word == "helps" else hurts if word == "hurts" else []).append(label)
        if helps or hurts:
            text = f"**{variant}**: helps on {', '.join(helps) or 'nothing'}; hurts on {', '.join(hurts) or 'nothing'}."
        else:
            text = f"**{variant}**: no metric changed beyond its 95% interval (or a single seed: no claim)."
        lines.append(text)
    return lines


def _bar_figure(summary: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(k, label) for k, label, _ in HEADLINE if any(k in cells for cells in summary.values())]
    variants = list(summary)
    fig, axes = plt.subplots(2, math.ceil(len(keys) / 2), figsize=(3.2 * math.ceil(len(keys) / 2), 6))
    for ax, (key, label) in zip(axes.flat, keys):
        means = [summary[v].get(key, (math.nan, None))[0] for v in variants]
        errors = [summary[v].get(key, (0, None))[1] or 0 for v in variants]
        ax.bar(
            range(len(variants)),
            means,
            yerr=errors,
            capsize=3,
            color=["#888888"] + ["#3b75af"] * (len(variants) - 1),
        )
        ax.set_xticks(range(len(variants)), variants, rotation=60, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def _curves_figure(out_dir: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted((out_dir / "seed0").rglob("run.json")) if (out_dir / "seed0").is_dir() else []
    curves = []
    for path in runs:
        history = [
            r for r in json.loads(path.read_text()).get("log_history", []) if "loss" in r and "step" in r
        ]
        if history:
            curves.append((str(path.parent.relative_to(out_dir / "seed0")), history))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, history in curves:
        ax.plot([r["step"] for r in history], [r["loss"] for r in history], label=name, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def timings_table(out_dir: Path) -> str:
    rows = ["| seed | stage | seconds | peak RSS (MB) |", "|---|---|---|---|"]
    for path in sorted(out_dir.glob("seed*/timings.json")):
        for stage, timing in json.loads(path.read_text()).items():
            rss = timing.get("peak_rss_mb")
            rows.append(
                f"| {path.parent.name} | {stage} | {timing.get('seconds', 0):.1f} | "
                f"{'' if rss is None else f'{rss:.0f}'} |"
            )
    return "\n".join(rows)


def write_report(out_dir) -> Path:
    out_dir = Path(out_dir)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    preset = json.loads((out_dir / "preset.json").read_text())
    summary = summarise(metrics)
    table = markdown_table(summary)
    notes = findings(summary)
    timings = timings_table(out_dir)
    settings = json.dumps(preset, indent=2)
    md = (
        "\n\n".join(
            [
                f"# tether study: preset `{preset['name']}`, seeds {preset['seeds']}",
                "Each cell: mean over seeds ± 95% interval (percent, except the MMHal score 0–6); for methods, in "
                "brackets, the paired difference against the baseline on the same seed and world, with its interval "
                "and a verdict. Higher is better except CHAIR, MMHal hallucination rate and SHR.",
                table,
                "## Findings",
                "\n".join(f"- {line}" for line in notes),
                "## Time and memory per stage",
                timings,
                "## Settings",
                f"```json\n{settings}\n```",
            ]
        )
        + "\n"
    )
    (out_dir / "report.md").write_text(md)
    figures = [
        ("Metrics per variant (error bars: 95% interval over seeds)", _bar_figure(summary)),
        ("Training curves (seed 0)", _curves_figure(out_dir)),
    ]
    body = [
        f"<h1>tether study: preset <code>{html.escape(preset['name'])}</code>, seeds {preset['seeds']}</h1>",
        "<p>Mean over seeds ± 95% interval; for methods, the paired difference against the baseline and a "
        "verdict. Higher is better except CHAIR, MMHal hallucination rate and SHR.</p>",
        _html_table(summary),
        "<h2>Findings</h2><ul>"
        + "".join(f"<li>{html.escape(n).replace('**', '')}</li>" for n in notes)
        + "</ul>",
    ]
    for title, png in figures:
        if png:
            body.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,{png}'>")
    body.append("<h2>Time and memory per stage</h2>" + _md_table_to_html(timings))
    body.append(f"<h2>Settings</h2><pre>{html.escape(settings)}</pre>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left;font-weight:600}"
        ".helps{color:#1a7f37}.hurts{color:#c62828}img{max-width:100%}"
    )
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>tether study</title><style>{style}</style>"
        f"</head><body>{''.join(body)}</body></html>\n"
    )
    return out_dir / "report.md"


def _html_table(summary: dict) -> str:
    head = (
        "<tr><th>variant</th>"
        + "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in HEADLINE)
        + "</tr>"
    )
    rows = [head]
    for variant, cells in summary.items():
        tds = [f"<td>{html.escape(variant)}</td>"]
        for key, _, better in HEADLINE:
            if key not in cells:
                tds.append("<td>–</td>")
                continue
            mean, half, diff, diff_half = cells[key]
            text = _fmt(mean, half, _is_percent(key))
            if variant != "baseline" and diff is not None:
                word = verdict(diff, diff_half, better)
                sign = "+" if diff >= 0 else ""
                text += (
                    f"<br><small class='{word}'>{sign}{_fmt(diff, diff_half, _is_percent(key))} "
                    f"{html.escape(word)}</small>"
                )
            tds.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _md_table_to_html(table: str) -> str:
    lines = [line.strip("|").split("|") for line in table.splitlines() if not line.startswith("|---")]
    head, body = lines[0], lines[1:]
    return (
        "<table><tr>"
        + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
        + "</tr>"
        + "".join(
            "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>" for row in body
        )
        + "</table>"
    )
