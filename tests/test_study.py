"""`tether study --preset quick` end to end (the README's first command): a smoke test of every stage."""

import json
import subprocess
import sys

from tether.report import HEADLINE, mean_interval, summarise, verdict
from tether.study import VARIANTS


def test_quick_study_writes_a_report(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "-m", "tether", "study", "--preset", "quick", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {out / 'report.md'}" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["0"]) == set(VARIANTS)
    for values in metrics["0"].values():
        assert {key for key, _, _ in HEADLINE} <= set(values)
    report = (out / "report.md").read_text()
    assert all(f"| {variant} |" in report for variant in VARIANTS)
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") >= 2
    # a rerun finds every stage done and only rewrites the report
    again = subprocess.run(
        [sys.executable, "-m", "tether", "study", "--preset", "quick", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0
    assert "tether.study: stage " not in again.stderr and " steps from " not in again.stderr


def test_intervals_and_verdicts_by_hand():
    mean, half = mean_interval([0.5, 0.7, 0.6])
    assert mean == 0.6
    assert abs(half - 4.303 * 0.1 / 3**0.5) < 1e-9
    assert mean_interval([0.4]) == (0.4, None)
    assert verdict(0.05, 0.01, True) == "helps" and verdict(0.05, 0.01, False) == "hurts"
    assert (
        verdict(0.05, 0.1, True) == "no significant change"
        and verdict(0.05, None, True) == "one seed: no claim"
    )
    metrics = {
        s: {"baseline": {"pope_adversarial/f1": b}, "hacl": {"pope_adversarial/f1": h}}
        for s, (b, h) in enumerate([(0.60, 0.66), (0.62, 0.67), (0.61, 0.67)])
    }
    cells = summarise(metrics)["hacl"]["pope_adversarial/f1"]
    assert abs(cells[2] - (0.06 + 0.05 + 0.06) / 3) < 1e-12 and verdict(cells[2], cells[3], True) == "helps"
