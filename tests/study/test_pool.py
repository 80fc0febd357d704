"""`tether study --pool` on the shipped full-preset results (seeds 0–2 and 3–5, docs/results)."""

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from tether.cli import main
from tether.core.errors import TetherError
from tether.study.pool import pool_studies

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
RUNS = [RESULTS / "study-full", RESULTS / "study-full-seeds345"]


def _copy(run: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for name in ("preset.json", "metrics.json"):
        shutil.copyfile(run / name, to / name)
    return to


def test_pooled_report_has_every_seed_and_intervals_over_all_of_them(tmp_path):
    report = pool_studies(RUNS, tmp_path / "pooled")
    pooled = json.loads((tmp_path / "pooled" / "metrics.json").read_text())
    assert sorted(pooled, key=int) == ["0", "1", "2", "3", "4", "5"]
    assert json.loads((tmp_path / "pooled" / "preset.json").read_text())["seeds"] == [0, 1, 2, 3, 4, 5]
    # baseline POPE-adversarial F1 over the six seeds, by hand: Student t with 5 degrees of freedom
    values = [pooled[s]["baseline"]["pope_adversarial/f1"] * 100 for s in pooled]
    half = 2.571 * statistics.stdev(values) / math.sqrt(6)
    text = report.read_text()
    assert "seeds [0, 1, 2, 3, 4, 5]" in text
    assert f"| baseline | {statistics.mean(values):.1f} ± {half:.1f} |" in text
    # and HACL's paired difference against it, seed by seed
    diffs = [
        (pooled[s]["hacl"]["pope_adversarial/f1"] - pooled[s]["baseline"]["pope_adversarial/f1"]) * 100
        for s in pooled
    ]
    assert f"(+{statistics.mean(diffs):.1f} ± {2.571 * statistics.stdev(diffs) / math.sqrt(6):.1f}" in text
    assert "Pooled from" in text and "study-full-seeds345 (seeds [3, 4, 5])" in text
    assert "Time and memory" not in text  # the shipped folders keep no seed<N>/timings.json


def test_stage_timings_come_along(tmp_path):
    a = _copy(RUNS[0], tmp_path / "a")
    (a / "seed2").mkdir()
    (a / "seed2" / "timings.json").write_text(
        json.dumps({"baseline": {"seconds": 391.7, "peak_rss_mb": 945}})
    )
    text = pool_studies([a, RUNS[1]], tmp_path / "pooled").read_text()
    assert "| seed2 | baseline | 391.7 | 945 |" in text


def test_a_seed_in_two_runs_must_have_the_same_metrics(tmp_path):
    a = _copy(RUNS[0], tmp_path / "a")
    b = _copy(RUNS[0], tmp_path / "b")
    assert "seeds [0, 1, 2]" in pool_studies([a, b], tmp_path / "same").read_text()  # a rerun: one copy kept
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["1"]["baseline"]["chair/chair_i"] += 0.01
    (b / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(
        TetherError, match=r"b/metrics.json: seed 1 is also in another run, with other metrics"
    ):
        pool_studies([a, b], tmp_path / "differ")


def test_runs_of_other_settings_or_folders_without_a_preset_are_refused(tmp_path):
    a = _copy(RUNS[0], tmp_path / "a")
    b = _copy(RUNS[1], tmp_path / "b")
    preset = json.loads((b / "preset.json").read_text())
    preset["dpo_steps"], preset["noise_scale"] = 400, 0.25
    (b / "preset.json").write_text(json.dumps(preset))
    with pytest.raises(TetherError, match=r"b/preset.json: settings \['dpo_steps', 'noise_scale'\] differ"):
        pool_studies([a, b], tmp_path / "out")
    (b / "preset.json").unlink()
    with pytest.raises(TetherError, match=r"b/preset.json: not found"):
        pool_studies([a, b], tmp_path / "out")
    (b / "preset.json").write_text("{\n  oops")
    with pytest.raises(TetherError, match=r"b/preset.json:2: not valid JSON"):
        pool_studies([a, b], tmp_path / "out")
    with pytest.raises(TetherError, match="must not be one of the runs"):
        pool_studies([a], a)


def test_a_setting_missing_from_an_older_preset_reads_as_its_default(tmp_path):
    # the shipped runs predate noise_schedule; a new run writes it
    a = _copy(RUNS[0], tmp_path / "a")
    b = _copy(RUNS[1], tmp_path / "b")
    assert "noise_schedule" not in json.loads((a / "preset.json").read_text())
    preset = json.loads((b / "preset.json").read_text())
    (b / "preset.json").write_text(json.dumps({**preset, "noise_schedule": "constant"}))
    pool_studies([a, b], tmp_path / "out")
    assert json.loads((tmp_path / "out" / "preset.json").read_text())["noise_schedule"] == "constant"
    (b / "preset.json").write_text(json.dumps({**preset, "noise_schedule": "cosine"}))
    with pytest.raises(TetherError, match=r"b/preset.json: settings \['noise_schedule'\] differ"):
        pool_studies([a, b], tmp_path / "cosine")


def test_cli_pool(tmp_path, capsys):
    assert main(["study", "--pool", *map(str, RUNS), "--out", str(tmp_path / "p")]) == 0
    assert "report:" in capsys.readouterr().out
    assert (tmp_path / "p" / "report.html").is_file()
    assert main(["study", "--pool", str(RUNS[0]), "--seeds", "1", "--out", str(tmp_path / "q")]) == 2
    assert "--pool takes the runs' own seeds" in capsys.readouterr().err
