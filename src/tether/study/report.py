"""The study report: ``report.md`` (figures beside it in ``figures/``) and a self-contained ``report.html``.

For each variant and metric: the mean over seeds with its 95% interval (Student t over seeds,
``tether.core.stats``; with one seed, no interval is claimed), and the paired difference against the baseline
(same seed, same world) with its interval. A method "helps" on a metric only when the whole interval of its
paired difference lies on the good side of zero; the report says so in words, and says so too when it does not help.

The report is a list of ``Section``s (``tether.core.document``) rendered twice, to Markdown and to HTML. Its
numbers come from ``statistics``, its figures from ``figures``, the claims table from ``claims`` and the
analysis sections (modality gap, attention share, SSL, reward model) from ``analysis_sections``; this module
only puts them together.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

from tether.core.document import STYLE, Cell, Section, Table, render_html, render_markdown
from tether.study.analysis_sections import analysis_sections
from tether.study.claims import claims_section
from tether.study.figures import bar_figure, curves_figure
from tether.study.preset import PRESETS, StudyPreset, baseline_recipe
from tether.study.recipe import STAGES
from tether.study.shift import shift_section
from tether.study.statistics import BENCHMARK_METRICS, HEADLINE, SECONDARY, findings, summarise, variant_table


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
        trained = variant.partition("+")[0]  # ha_dpo+vcd: ha_dpo's training
        mine = short + [k for k in VARIANT_SETTINGS.get(trained, ()) if getattr(ours, k) < getattr(full, k)]
        levels[variant] = "measurement" if not mine else "smoke: shorter than full in " + "; ".join(mine)
    return levels


def write_report(out_dir) -> Path:
    """Write report.md, figures/*.png and report.html from a study folder; returns the path of report.md."""
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
    shift = shift_section(metrics, out_dir)
    sections = [
        Section(
            f"tether study: preset `{preset['name']}`, seeds {preset['seeds']}",
            reading,
            [variant_table(summary, HEADLINE, levels=row_levels(preset, summary))],
            level=1,
        ),
        *([claims] if claims else []),
        *([shift] if shift else []),
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
                bar_figure(summary),
            ),
        ),
    ]
    curves = curves_figure(out_dir)
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
        f"<!doctype html><html><head><meta charset='utf-8'><title>tether study</title><style>{STYLE}</style>"
        f"</head><body>{body}</body></html>\n"
    )
    return out_dir / "report.md"
