"""``tether report DIR...``: result folders side by side, with paired differences against a baseline.

Each run is labelled by its model name and a short fingerprint of what produced it (model, data and its
hash, decoding, judge, settings), so two runs of one model stay apart. Every other run is compared with the
baseline (the first run unless ``--baseline`` names another) on the items both answered: the difference of
each metric, and its 95% interval from a paired percentile bootstrap (``scipy.stats.bootstrap`` with
``paired=True``: the same item ids, or the same clusters of them such as an MME image pair, are drawn for
both runs). The table prints as text or Markdown, and as HTML through the study report's renderer.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tether.core.document import STYLE as _STYLE
from tether.core.document import Cell, Section, Table, markdown_table, render_html
from tether.core.errors import TetherError
from tether.core.io import read_jsonl
from tether.eval.registry import BENCHMARKS
from tether.eval.results import SAMPLES_FILE, read_results

# metrics where lower is better; ratios without a better side get no verdict; counts get no difference
LOWER_IS_BETTER = frozenset(name for unit in BENCHMARKS.values() for name in unit.lower_is_better)
NO_DIRECTION = frozenset(name for unit in BENCHMARKS.values() for name in unit.no_direction)
COUNTS = ("tp", "fp", "tn", "fn", "n")


def _metric_function(benchmark: str):
    """``(metrics_fn, cluster_key)`` with which the benchmark's scorer recomputes metrics from records (the
    ``Score`` each scorer returns); ``(None, None)`` for a benchmark without one."""
    unit = BENCHMARKS.get(benchmark)
    if unit is None or unit.record_metrics is None:
        return None, None
    return unit.record_metrics, unit.cluster_key


@dataclass
class Run:
    folder: Path
    results: dict
    label: str

    @property
    def benchmark(self) -> str:
        return self.results["benchmark"]

    def samples(self) -> list[dict]:
        path = self.folder / SAMPLES_FILE
        return read_jsonl(path) if path.is_file() else []


def short_fingerprint(results: dict) -> str:
    """The run's own fingerprint when it records one, else a hash of what produced its numbers."""
    recorded = results.get("fingerprint")
    if isinstance(recorded, str) and recorded:
        return recorded[:6]
    data = results.get("data") or {}
    produced_by = {
        "benchmark": results.get("benchmark"),
        "model": results.get("model"),
        "data": [data.get("sha256") or data.get("file"), data.get("version")],
        "decoding": results.get("decoding"),
        "judge": results.get("judge"),
        "settings": {k: v for k, v in (results.get("extra") or {}).items() if k != "model_placement"},
    }
    return hashlib.sha256(json.dumps(produced_by, sort_keys=True, default=str).encode()).hexdigest()[:6]


def load_runs(paths: list) -> list[Run]:
    if not paths:
        raise TetherError("give at least one run folder")
    runs = []
    for path in paths:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        results = read_results(path)
        model = results.get("model")
        name = Path(str(model).rstrip("/")).name if model else folder.name
        runs.append(Run(folder, results, f"{name} #{short_fingerprint(results)}"))
    seen: dict[str, int] = {}
    for run in runs:  # the same run given twice, or two identical runs: tell the columns apart
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label += f" ({seen[run.label]})"
    return runs


def pick_baseline(runs: list[Run], baseline: str | None) -> int:
    """The index of ``baseline``: a run folder among ``runs``, a 1-based position, or a label; default 0."""
    if baseline is None:
        return 0
    for i, run in enumerate(runs):
        if Path(baseline).resolve() in (run.folder.resolve(), run.folder.resolve() / "results.json"):
            return i
        if baseline == run.label:
            return i
    if baseline.isdigit() and 1 <= int(baseline) <= len(runs):
        return int(baseline) - 1
    raise TetherError(
        f"--baseline {baseline}: not one of the runs given (a folder, a position 1..N or a label)"
    )


def paired_differences(
    baseline: list[dict],
    other: list[dict],
    metrics_fn,
    cluster_key: str | None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, tuple[float, float, float]], int]:
    """``{metric: (difference, low, high)}`` of ``other`` minus ``baseline`` on the items both scored, and how
    many units (items, or clusters under ``cluster_key``) they share. Paired: each resample draws the same
    units for both runs."""
    from scipy.stats import bootstrap

    def units(records):
        groups: dict[str, list[dict]] = {}
        for record in records:
            groups.setdefault(str(record[cluster_key] if cluster_key else record["id"]), []).append(record)
        return groups

    a_units, b_units = units(baseline), units(other)
    shared = [key for key in a_units if key in b_units]
    if len(shared) < 2:
        return {}, len(shared)
    a_groups = [a_units[key] for key in shared]
    b_groups = [b_units[key] for key in shared]

    def metrics_of(groups, picks):
        return metrics_fn([record for i in picks for record in groups[int(i)]])

    index = np.arange(len(shared))
    a_all, b_all = metrics_of(a_groups, index), metrics_of(b_groups, index)
    names = [
        n
        for n in a_all
        if n in b_all and isinstance(a_all[n], int | float) and n.rsplit("/", 1)[-1] not in COUNTS
    ]
    if not names:
        return {}, len(shared)

    def statistic(a_picks, b_picks):
        a, b = metrics_of(a_groups, a_picks), metrics_of(b_groups, b_picks)
        return np.array([b[n] - a[n] for n in names], dtype=float)

    result = bootstrap(
        (index, index),
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=n_resamples,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(seed),
    )
    low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
    return {
        name: (float(b_all[name] - a_all[name]), float(low[i]), float(high[i]))
        for i, name in enumerate(names)
    }, len(shared)


def _verdict(name: str, low: float, high: float) -> str:
    """A difference whose whole interval lies on one side of zero, read with the metric's better side."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf in NO_DIRECTION or not (low > 0 or high < 0):
        return ""
    better = leaf not in LOWER_IS_BETTER
    return "helps" if (low > 0) == better else "hurts"


def _value(value, interval=None) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return str(int(value))
    text = f"{value:.4f}"
    return text + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")


@dataclass
class Comparison:
    runs: list[Run]
    baseline: int
    table: Table
    notes: list[str]


def compare_runs(
    paths: list,
    *,
    baseline: str | None = None,
    show_intervals: bool = True,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    runs = load_runs(paths)
    base = pick_baseline(runs, baseline)
    base_run = runs[base]
    metrics_fn, cluster_key = _metric_function(base_run.benchmark)
    base_samples = base_run.samples() if len(runs) > 1 else []
    names: list[str] = []
    for run in runs:
        names += [n for n in run.results["metrics"] if n not in names]
    columns: list[list[Cell | str]] = []
    notes = [f"Baseline: {base_run.label} ({base_run.folder})."]
    for i, run in enumerate(runs):
        diffs, shared = {}, 0
        if i != base and run.benchmark == base_run.benchmark and metrics_fn is not None:
            diffs, shared = paired_differences(
                base_samples, run.samples(), metrics_fn, cluster_key, n_resamples=n_resamples, seed=seed
            )
            n_base = len({str(r[cluster_key] if cluster_key else r["id"]) for r in base_samples})
            if shared < n_base:
                notes.append(f"{run.label}: paired with the baseline on {shared} of its {n_base} items.")
        elif i != base:
            notes.append(f"{run.label}: not comparable with the baseline (other benchmark, or no samples).")
        column: list[Cell | str] = []
        for name in names:
            value = run.results["metrics"].get(name)
            interval = run.results.get("intervals", {}).get(name) if show_intervals else None
            cell = Cell(_value(value, interval))
            if name in diffs:
                diff, low, high = diffs[name]
                cell.verdict = _verdict(name, low, high)
                cell.note = f"Δ {diff:+.4f}" + (f" [{low:+.4f}, {high:+.4f}]" if show_intervals else "")
                cell.note += f" {cell.verdict}" if cell.verdict else ""
            column.append(cell)
        column += [value for _, value in _provenance(run.results)]
        columns.append(column)
    row_names = names + [label for label, _ in _provenance(runs[0].results)]
    rows = [[name] + [column[k] for column in columns] for k, name in enumerate(row_names)]
    rows = [row for row in rows if any(cell not in ("", "–") for cell in row[1:])]  # nothing to show
    head = ["metric"] + [
        f"{r.label} [{r.benchmark}]" + (" (baseline)" if i == base else "") for i, r in enumerate(runs)
    ]
    notes.append(
        "Δ: difference from the baseline on the items both runs answered, with its paired percentile "
        f"bootstrap 95% interval ({n_resamples} resamples, seed {seed}); 'helps'/'hurts' when the interval "
        "excludes 0."
    )
    return Comparison(runs, base, Table(head, rows), notes)


def _provenance(results: dict) -> list[tuple[str, str]]:
    data = results.get("data") or {}
    files = data.get("file")
    files = files if isinstance(files, list) else [files] if files else []
    decoding = results.get("decoding") or {}
    placement = (results.get("extra") or {}).get("model_placement") or {}
    judge = results.get("judge")
    return [
        ("model", str(results.get("model") or "")),
        ("data", (", ".join(Path(f).name for f in files) + f" {data.get('version') or ''}").strip()),
        ("mode", str(decoding.get("mode", ""))),
        ("max_new_tokens", str(decoding.get("max_new_tokens", ""))),
        ("dtype", str(placement.get("dtype", ""))),
        ("seed", str(results.get("seed", ""))),
        ("judge", str(judge.get("name")) if isinstance(judge, dict) else ""),
    ]


def _text(cell: Cell | str) -> str:
    return cell if isinstance(cell, str) else cell.text + (f" ({cell.note})" if cell.note else "")


def format_comparison(comparison: Comparison, *, markdown: bool = False) -> str:
    table = comparison.table
    if markdown:
        return markdown_table(table) + "\n\n" + "\n".join(f"- {n}" for n in comparison.notes)
    rows = [table.head] + [[_text(c) for c in row] for row in table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [""] + comparison.notes)


def write_html(comparison: Comparison, path) -> Path:
    """The comparison as one self-contained HTML page, rendered as the study report renders its tables."""
    section = Section(
        "tether report: " + ", ".join(run.label for run in comparison.runs),
        "Each cell: the metric with its 95% bootstrap interval; below it, for runs other than the baseline, "
        "the paired difference from the baseline.",
        [comparison.table],
        notes=comparison.notes,
        level=1,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(section.title)}</title>"
        f"<style>{_STYLE}</style></head><body>{render_html(section)}</body></html>\n",
        encoding="utf-8",
    )
    return path
