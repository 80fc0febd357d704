"""`tether study --pool`: one report over the seeds of several finished study folders.

Seeds run at different times or on different machines (``--seeds 0 1 2`` here, ``--seeds 3 4 5`` there) are
one experiment when everything but the seeds is the same: the pooled folder gets their metrics side by side
and the usual report, with intervals over all seeds. Nothing is trained or evaluated again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.io import write_json
from tether.study.preset import StudyPreset
from tether.study.report import write_report

PRESET_DEFAULTS = dataclasses.asdict(StudyPreset())


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise TetherError(f"{path}: not found (a study folder holds metrics.json and preset.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TetherError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def pool_studies(runs: list, out_dir) -> Path:
    """Merge the study folders ``runs`` into ``out_dir`` and write its report; returns the path of report.md.

    The runs must share their preset apart from ``seeds``. A seed found in two runs must have the same
    metrics in both (a rerun from the same cache), else it is an error: the pool never picks one silently.
    """
    if not runs:
        raise TetherError("--pool needs at least one study folder")
    out_dir = Path(out_dir)
    if any(out_dir.resolve() == Path(run).resolve() for run in runs):
        raise TetherError(f"{out_dir}: the pooled folder must not be one of the runs it pools")
    metrics, sources, reference = {}, [], None
    for run in map(Path, runs):
        # a preset.json written before a setting existed ran with that setting's default
        preset = {**PRESET_DEFAULTS, **_read_json(run / "preset.json")}
        run_metrics = _read_json(run / "metrics.json")
        settings = {k: v for k, v in preset.items() if k != "seeds"}
        if reference is None:
            reference = (run, settings, preset)
        elif settings != reference[1]:
            differ = sorted(
                k for k in settings.keys() | reference[1].keys() if settings.get(k) != reference[1].get(k)
            )
            raise TetherError(
                f"{run}/preset.json: settings {differ} differ from {reference[0]}/preset.json; only runs of one "
                "preset that differ in their seeds can be pooled"
            )
        for seed, seed_metrics in run_metrics.items():
            if seed in metrics and metrics[seed] != seed_metrics:
                raise TetherError(
                    f"{run}/metrics.json: seed {seed} is also in another run, with other metrics"
                )
            metrics[seed] = seed_metrics
        environment = run / "environment.json"
        sources.append(
            {
                "run": str(run),
                "seeds": sorted(int(s) for s in run_metrics),
                "environment": _read_json(environment) if environment.is_file() else None,
            }
        )
    seeds = sorted(int(s) for s in metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "preset.json", {**reference[2], "seeds": seeds})  # the seeds keep their place
    write_json(out_dir / "metrics.json", {str(s): metrics[str(s)] for s in seeds})
    write_json(out_dir / "pooled_from.json", sources)
    for source in sources:  # the timing table reads seed<N>/timings.json
        for seed in source["seeds"]:
            timings = Path(source["run"]) / f"seed{seed}" / "timings.json"
            if timings.is_file():
                (out_dir / f"seed{seed}").mkdir(exist_ok=True)
                shutil.copyfile(timings, out_dir / f"seed{seed}" / "timings.json")
    return write_report(out_dir)
