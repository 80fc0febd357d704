"""The study report: ``report.md`` (figures beside it in ``figures/``) and a self-contained ``report.html``.

For each variant and metric: the mean over seeds with its 95% interval (Student t over seeds,
``tether.core.stats``; with one seed, no interval is claimed), and the paired difference against the baseline
(same seed, same world) with its interval. A method "helps" on a metric only when the whole interval of its
paired difference lies on the good side of zero; the report says so in words, and says so too when it does not help.

The report is built as a list of ``Section``s (a paragraph, tables, a figure, bullet notes) rendered twice,
to Markdown and to HTML; the analysis sections (modality gap, attention share, SSL, reward model) live in
``report_analysis.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

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


# ---- sections and their two renderings ----------------------------------------------------------------


@dataclass
class Cell:
    """One table cell: its value, an optional second line (a difference) and its verdict (a CSS class)."""

    text: str
    note: str = ""
    verdict: str = ""


@dataclass
class Table:
    head: list[str]
    rows: list[list[Cell | str]]


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: tuple[str, str, bytes] | None = None  # (file name, caption, PNG bytes)
    level: int = 2


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


def _md_cell(cell: Cell | str) -> str:
    text = cell if isinstance(cell, str) else cell.text + (f" ({cell.note})" if cell.note else "")
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    rows = ["| " + " | ".join(table.head) + " |", "|---" * len(table.head) + "|"]
    rows += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(rows)


def html_table(table: Table) -> str:
    def td(cell):
        if isinstance(cell, str):
            return f"<td{_num(cell)}>{html.escape(cell)}</td>"
        css = cell.verdict.replace(" ", "-")
        text = html.escape(cell.text)
        if cell.verdict and not cell.note:  # a verdict cell of its own (the claims table) takes its colour
            text = f"<span class='{css}'>{text}</span>"
        note = cell.note and f"<br><small class='{css}'>{html.escape(cell.note)}</small>"
        return f"<td{_num(cell.text)}>{text}{note}</td>"

    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.head) + "</tr>"
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in table.rows)
    return f"<div class='scroll'><table>{head}{body}</table></div>"


def _num(text: str) -> str:
    """A class attribute that right-aligns a cell holding a number (or a dash for a missing one)."""
    return " class='num'" if re.fullmatch(r"[-+–]?[\d.]*( ± [\d.]+)?", text.strip()) else ""


def _md_inline(text: str) -> str:
    """The little Markdown the sections use (**bold**, `code`) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_markdown(section: Section) -> str:
    parts = [f"{'#' * section.level} {section.title}"]
    parts += [section.text] if section.text else []
    parts += [markdown_table(t) for t in section.tables]
    parts += ["\n".join(f"- {n}" for n in section.notes)] if section.notes else []
    if section.figure:
        name, caption, _ = section.figure
        parts.append(f"![{caption}](figures/{name})\n\n*{caption}*")
    return "\n\n".join(parts)


def render_html(section: Section) -> str:
    parts = [f"<h{section.level}>{_md_inline(section.title)}</h{section.level}>"]
    parts += [f"<p>{_md_inline(section.text)}</p>"] if section.text else []
    parts += [html_table(t) for t in section.tables]
    if section.notes:
        parts.append("<ul>" + "".join(f"<li>{_md_inline(n)}</li>" for n in section.notes) + "</ul>")
    if section.figure:
        _, caption, png = section.figure
        data = base64.b64encode(png).decode()
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_md_inline(caption)}</figcaption></figure>"
        )
    return "".join(parts)


# ---- the benchmark sections ---------------------------------------------------------------------------


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


def _bar_figure(summary: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(k, label) for k, label, _ in HEADLINE if any(k in cells for cells in summary.values())]
    variants = list(summary)
    columns = 4
    rows = math.ceil(len(keys) / columns)
    height = 0.28 * len(variants) + 1.2
    fig, axes = plt.subplots(rows, columns, figsize=(12, height * rows), sharey=True, squeeze=False)
    positions = range(len(variants))[::-1]  # the baseline on top
    for ax, (key, label) in zip(axes.flat, keys):
        scale = 100 if is_percent(key) else 1
        means = [summary[v].get(key, (math.nan, None))[0] * scale for v in variants]
        errors = [(summary[v].get(key, (0, None))[1] or 0) * scale for v in variants]
        colours = ["#888888"] + ["#3b75af"] * (len(variants) - 1)
        ax.barh(positions, means, xerr=errors, capsize=2, color=colours)
        ax.axvline(means[0], color="#555555", linewidth=0.8, linestyle="--")
        ax.set_yticks(positions, variants, fontsize=8)
        ax.set_title(label + (" (%)" if scale == 100 else ""), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def _curves_figure(out_dir: Path) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed0 = out_dir / "seed0"
    runs = sorted(seed0.rglob("run.json")) if seed0.is_dir() else []
    curves = []
    for path in runs:
        history = [
            r for r in json.loads(path.read_text()).get("log_history", []) if "loss" in r and "step" in r
        ]
        if history:
            curves.append((str(path.parent.relative_to(seed0)), history))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colours = plt.get_cmap("tab20").colors
    for i, (name, history) in enumerate(curves):
        steps, losses = [r["step"] for r in history], [r["loss"] for r in history]
        style = "-" if i < len(colours) else "--"
        ax.plot(steps, losses, style, color=colours[i % len(colours)], label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def timings_table(out_dir: Path) -> Table:
    rows = []
    for path in sorted(out_dir.glob("seed*/timings.json")):
        timings = json.loads(path.read_text())
        for stage, timing in timings.items():
            rss = timing.get("peak_rss_mb")
            rows.append(
                [
                    path.parent.name,
                    stage,
                    f"{timing.get('seconds', 0):.1f}",
                    "" if rss is None else f"{rss:.0f}",
                ]
            )
        total = sum(t.get("seconds", 0) for t in timings.values())
        rows.append([path.parent.name, Cell("total"), Cell(f"{total:.1f}"), ""])
    return Table(["seed", "stage", "seconds", "peak RSS (MB)"], rows)


# the settings each variant's training rests on beyond the baseline recipe (StudyPreset fields)
VARIANT_SETTINGS = {
    "ha_dpo": ("dpo_steps",),
    "noiseboost_dpo": ("dpo_steps",),
    "combo": ("dpo_steps",),
    "fact_rlhf": ("pair_images", "reward_steps", "ppo_steps"),
    "noiseboost_ssl": ("ssl_images",),
}


def row_levels(preset: dict, variants) -> dict[str, str]:
    """For each variant: "measurement" when its training (the baseline recipe's stages and its own) is at
    least as long as the full preset's, whose results docs/results holds; else "smoke", naming what is
    shorter: a model trained that briefly says nothing about the method, only that the pipeline runs. How
    precise a measurement is on its items is the intervals' business, not this label's."""
    from tether.study import PRESETS, StudyPreset, baseline_recipe
    from tether.world.baseline import STAGES

    known = {f.name for f in dataclasses.fields(StudyPreset)}
    ours = StudyPreset(**{k: v for k, v in preset.items() if k in known})
    full = PRESETS["full"]
    recipe, full_recipe = baseline_recipe(ours, 0), baseline_recipe(full, 0)
    short = [s for s in STAGES if getattr(recipe, s).steps < getattr(full_recipe, s).steps]
    # the quick preset's recipe is shorter than full's in alignment only, and its baseline passes the bar of
    # a real baseline (docs/results/quick-recipe-pilot, run D/E): a measurement too
    quick_recipe = baseline_recipe(PRESETS["quick"], 0)
    if all(getattr(recipe, s).steps >= getattr(quick_recipe, s).steps for s in STAGES):
        short = []
    short = [f"baseline recipe ({', '.join(short)})"] if short else []
    levels = {}
    for variant in variants:
        mine = short + [k for k in VARIANT_SETTINGS.get(variant, ()) if getattr(ours, k) < getattr(full, k)]
        levels[variant] = "measurement" if not mine else "smoke: shorter than full in " + "; ".join(mine)
    return levels


def write_report(out_dir) -> Path:
    """Write report.md, figures/*.png and report.html from a study folder; returns the path of report.md."""
    from tether.report_analysis import analysis_sections
    from tether.report_claims import claims_section

    out_dir = Path(out_dir)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    preset = json.loads((out_dir / "preset.json").read_text())
    summary = summarise(metrics, [k for k, _, _ in BENCHMARK_METRICS])
    settings = "\n".join(f"{name}: {json.dumps(value)}" for name, value in preset.items())
    reading = (
        "Each cell: mean over seeds ± 95% interval (percent, except the MMHal score on 0–6); for a method, "
        "below (in brackets in Markdown): its paired difference against the baseline on the same seed and "
        "world, with its interval and a verdict. Higher is better except CHAIR_i/CHAIR_s, the MMHal "
        "hallucination rate and SHR; the POPE yes-ratio is best near 50%. The last column says whether a "
        "row is a measurement (its training at least as long as the full preset's) or a smoke-level stage, "
        "too short to mean anything about the method, naming what is shorter."
    )
    pooled = out_dir / "pooled_from.json"
    if pooled.is_file():
        runs = "; ".join(f"{r['run']} (seeds {r['seeds']})" for r in json.loads(pooled.read_text()))
        reading += f" Pooled from {runs} (`tether study --pool`)."
    analyses, analysis_findings = analysis_sections(metrics, out_dir)
    claims = claims_section(metrics, out_dir)
    sections = [
        Section(
            f"tether study: preset `{preset['name']}`, seeds {preset['seeds']}",
            reading,
            [variant_table(summary, HEADLINE, levels=row_levels(preset, summary))],
            level=1,
        ),
        *([claims] if claims else []),
        Section("More benchmark metrics", tables=[variant_table(summary, SECONDARY)]),
        Section(
            "Findings",
            notes=findings(summary) + analysis_findings,
        ),
        *analyses,
        Section(
            "Benchmark metrics per variant",
            figure=(
                "metrics.png",
                "Means over seeds with 95% error bars (none with one seed); the dashed line is the baseline. "
                "Look for bars on the good side of the line whose error bars clear it.",
                _bar_figure(summary),
            ),
        ),
    ]
    curves = _curves_figure(out_dir)
    if curves:
        sections.append(
            Section(
                "Training curves (seed 0)",
                figure=(
                    "curves.png",
                    "Training loss of every stage of seed 0 (log scale; the losses of different objectives "
                    "are not comparable with each other). Look for curves that still fall at their last "
                    "step (too few steps) or that rise (a learning rate too high).",
                    curves,
                ),
            )
        )
    timings = timings_table(out_dir)
    if timings.rows:  # a pooled folder has them only for runs that kept seed<N>/timings.json
        sections.append(Section("Time and memory per stage", tables=[timings]))
    sections.append(Section("Settings", f"```\n{settings}\n```"))
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    for section in sections:
        if section.figure:
            (figures / section.figure[0]).write_bytes(section.figure[2])
    (out_dir / "report.md").write_text("\n\n".join(render_markdown(s) for s in sections) + "\n")
    body = "".join(render_html(s) for s in sections[:-1])
    body += f"<h2>Settings</h2><pre>{html.escape(settings)}</pre>"
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>tether study</title><style>{_STYLE}</style>"
        f"</head><body>{body}</body></html>\n"
    )
    return out_dir / "report.md"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.4}"
    ".scroll{overflow-x:auto;margin:0.6em 0}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}"
    "td:first-child{font-weight:600;white-space:nowrap}small{color:#555;white-space:nowrap}"
    ".helps,.SSL-better{color:#1a7f37;font-weight:600}.hurts,.SSL-worse{color:#c62828;font-weight:600}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:13px;color:#444;max-width:900px}"
    "pre{background:#f6f6f6;padding:0.8em;font-size:12px}"
)
