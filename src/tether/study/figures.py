"""The study report's figures: benchmark means per variant with their intervals, and the training curves."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from tether.study.statistics import HEADLINE, is_percent


def bar_figure(summary: dict) -> bytes:
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
    return png(fig)


def curves_figure(out_dir: Path) -> bytes | None:
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
    return png(fig)


def png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
