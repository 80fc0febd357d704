"""Result store: ``results.json`` (metrics, 95% intervals, provenance) and ``samples.jsonl`` per run."""

import json
from pathlib import Path

from tether.core.errors import DataError
from tether.core.io import file_sha256, read_json, write_json
from tether.core.provenance import environment
from tether.eval.benchmark import Score

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


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
        "data": _data_record(data_file, data_version),
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


def _data_record(data_file, data_version: str | None) -> dict:
    """The data file (or files: POPE splits run together) with version and content hash(es)."""
    if isinstance(data_file, list | tuple):
        if len(data_file) != 1:
            files = [str(f) for f in data_file]
            return {"file": files, "version": data_version, "sha256": [file_sha256(f) for f in files]}
        data_file = data_file[0]
    return {"file": str(data_file), "version": data_version, "sha256": file_sha256(data_file)}


def read_results(run_dir) -> dict:
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    results = read_json(path)
    if not isinstance(results, dict) or "metrics" not in results or "benchmark" not in results:
        raise DataError("not a tether results file (no 'benchmark'/'metrics')", path)
    return results
