"""Result store: ``results.json`` (metrics, 95% intervals, provenance) and ``samples.jsonl`` per run."""

import hashlib
import json
from pathlib import Path

from tether.data.io import read_json, write_json
from tether.errors import DataError, TetherError
from tether.eval.benchmark import Score
from tether.provenance import environment

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


def file_sha256(path) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return None  # a folder (MME layouts) has no single digest
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_results(
    out_dir,
    benchmark: str,
    score: Score,
    *,
    model: str | None,
    data_file,
    data_version: str | None,
    decoding: dict | None,
    judge: dict | None,
    seed: int,
    extra: dict | None = None,
    n_resamples: int = 1000,
) -> Path:
    """Write ``results.json`` and ``samples.jsonl`` into ``out_dir``; return the results path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "benchmark": benchmark,
        "metrics": score.metrics,
        "intervals": score.intervals(n_resamples=n_resamples, seed=seed),
        "interval_method": f"percentile bootstrap over samples, 95%, {n_resamples} resamples, seed {seed}",
        "n_samples": len(score.per_sample),
        "notes": score.notes,
        "scoring": score.scoring,
        "model": model,
        "data": {"file": str(data_file), "version": data_version, "sha256": file_sha256(data_file)},
        "decoding": decoding or {},
        "judge": judge,
        "seed": seed,
        "extra": extra or {},
        "environment": environment(),
    }
    samples_path = out_dir / SAMPLES_FILE
    tmp = samples_path.with_name(SAMPLES_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in score.per_sample:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(samples_path)
    results_path = out_dir / RESULTS_FILE
    write_json(results_path, results)
    return results_path


def read_results(run_dir) -> dict:
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    results = read_json(path)
    if not isinstance(results, dict) or "metrics" not in results or "benchmark" not in results:
        raise DataError("not a tether results file (no 'benchmark'/'metrics')", path)
    return results


def format_report(run_dirs: list, *, markdown: bool = False, show_intervals: bool = True) -> str:
    """A side-by-side table: one row per metric, one column per run (metrics x100 are not rescaled)."""
    if not run_dirs:
        raise TetherError("give at least one run folder")
    runs = [(str(d), read_results(d)) for d in run_dirs]
    names = []
    for _, results in runs:
        for name in results["metrics"]:
            if name not in names:
                names.append(name)
    header = ["metric"] + [f"{r.get('model') or d} [{r['benchmark']}]" for d, r in runs]
    rows = [header]
    for name in names:
        row = [name]
        for _, results in runs:
            value = results["metrics"].get(name)
            interval = results.get("intervals", {}).get(name) if show_intervals else None
            row.append(_cell(value, interval))
        rows.append(row)
    for label, key in (("data", "data"), ("seed", "seed"), ("judge", "judge")):
        row = [label]
        for _, results in runs:
            value = results.get(key)
            if key == "data" and isinstance(value, dict):
                value = f"{Path(value.get('file', '')).name} {value.get('version') or ''}".strip()
            if key == "judge" and isinstance(value, dict):
                value = value.get("name")
            row.append("" if value is None else str(value))
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _cell(value, interval) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return str(int(value))
    text = f"{value:.4f}"
    if interval:
        text += f" [{interval[0]:.4f}, {interval[1]:.4f}]"
    return text
