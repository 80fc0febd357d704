"""The report's claims table: verdicts by hand, power, item-level intervals of one seed, and rows from the
shipped seeds 0–2 (docs/results)."""

import json
import statistics
from pathlib import Path

import pytest

from tether.study.claims import CLAIMS, claim_differences, claim_verdict, claims_section, seed_level

METRICS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "results" / "study-full" / "metrics.json").read_text()
)


def _verdict(diffs, higher, paper_effect=None):
    _, interval, _, detectable = seed_level(diffs)
    return claim_verdict(interval, higher, detectable, paper_effect, key="gap/")


def test_verdicts_by_hand():
    # [1, 2, 3]: mean 2, interval 4.303 · 1 / √3 = 2.48 → crosses zero; sd 1 with 3 seeds detects ≥ 3.264
    # (noncentrality 3.264 · √3 = 5.65)
    _, interval, sd, detectable = seed_level([1.0, 2.0, 3.0])
    assert interval == pytest.approx((2 - 2.4842, 2 + 2.4842), abs=1e-4) and sd == 1.0
    assert detectable == pytest.approx(3.264, abs=1e-3)
    assert _verdict([1.0, 2.0, 3.0], True) == "not reproduced (would have detected ≥ 3.264)"
    # the paper's effect below what three seeds can see: the study cannot say
    assert _verdict([1.0, 2.0, 3.0], True, 2.0) == "inconclusive: the study cannot detect effects below 3.264"
    assert _verdict([1.0, 2.0, 3.0], True, 5.0) == "not reproduced (would have detected ≥ 3.264)"
    assert _verdict([2.0, 2.5, 3.0], True) == "reproduced"
    assert _verdict([2.0, 2.5, 3.0], True, 100.0) == "reproduced"  # power does not undo a finding
    assert _verdict([-2.0, -2.5, -3.0], False) == "reproduced"
    assert _verdict([2.0, 2.5, 3.0], False) == (
        "not reproduced (would have detected ≥ 1.632); the opposite, beyond the interval"
    )
    assert _verdict([5.0], True) == "one seed: no claim"


def test_rows_from_the_shipped_seeds():
    chair = next(c for c in CLAIMS if c.paper == "HA-DPO" and "CHAIR_i" in c.text)
    diffs = claim_differences(METRICS, chair)
    by_hand = [METRICS[s]["ha_dpo"]["chair/chair_i"] - METRICS[s]["baseline"]["chair/chair_i"] for s in "012"]
    assert diffs == by_hand and all(d < 0 for d in diffs)
    half = 4.303 * statistics.stdev(by_hand) / 3**0.5 * 100
    mean = statistics.mean(by_hand) * 100
    section = claims_section(METRICS)
    rows = {(r[0], r[1]): r for r in section.tables[0].rows}
    row = rows[("HA-DPO", "CHAIR_i down vs the baseline")]
    assert row[3] == "3 of 3"
    assert row[4] == f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] (3 seeds)"
    # 80% power with 3 seeds: 3.264 standard deviations of the differences
    detectable = float(row[6])
    assert detectable == pytest.approx(3.264 * statistics.stdev(by_hand) * 100, abs=0.1)
    # HA-DPO's POPE claim carries the paper's effect (+0.79 F1 points) and how many seeds would detect it
    f1 = rows[("HA-DPO", "POPE-adversarial F1 up vs the baseline")]
    assert f1[5] == "+0.8"
    power = {(r[0], r[1]): r for r in section.tables[1].rows}
    assert int(power[("HA-DPO", "POPE-adversarial F1 up vs the baseline")][3]) > 3
    # the reward model's claim compares two metrics of one variant
    reward = rows[("Fact-RLHF", "reward model with facts more accurate on held-out pairs than without")]
    assert reward[2] == "reward/accuracy_facts − reward/accuracy_vanilla"
    # every claim whose variants ran has its row (the shipped seeds predate the decoding variants)
    assert len(rows) == len([c for c in CLAIMS if c.a[0] in METRICS["0"]]) == len(CLAIMS) - 6


def test_a_study_without_the_variants_has_no_claims_table():
    only_baseline = {s: {"baseline": m["baseline"]} for s, m in METRICS.items()}
    assert claims_section(only_baseline) is None


def _pope_samples(path: Path, correct: list[bool], labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (right, label) in enumerate(zip(correct, labels)):
        parsed = label if right else ("no" if label == "yes" else "yes")
        rows.append(
            {"id": str(i), "category": "adversarial", "answer": parsed, "parsed": parsed, "label": label}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_one_seed_gets_a_paired_bootstrap_over_items(tmp_path):
    from tether.core.stats import bootstrap_interval
    from tether.eval.pope import pope_metrics

    labels = ["yes", "no"] * 100
    baseline = [label == "yes" for label in labels]  # answers yes to everything: F1 2/3
    better = [label == "yes" or i % 10 != 1 for i, label in enumerate(labels)]  # right on 90% of the nos
    evals = tmp_path / "seed0" / "eval"
    _pope_samples(evals / "baseline" / "pope_adversarial" / "samples.jsonl", baseline, labels)
    _pope_samples(evals / "ha_dpo" / "pope_adversarial" / "samples.jsonl", better, labels)
    f1 = {name: pope_metrics(_records(evals / name))["f1"] for name in ("baseline", "ha_dpo")}
    metrics = {"0": {name: {"pope_adversarial/f1": value} for name, value in f1.items()}}
    section = claims_section(metrics, tmp_path)
    row = next(r for r in section.tables[0].rows if r[1] == "POPE-adversarial F1 up vs the baseline")
    assert row[4].endswith("(200 items, one seed)") and row[-1].text == "reproduced"
    # the interval is the paired one: the same items drawn for both models, resampled by scipy's bootstrap
    a, b = _records(evals / "ha_dpo"), _records(evals / "baseline")
    low, high = bootstrap_interval(
        200, lambda i: pope_metrics([a[j] for j in i])["f1"] - pope_metrics([b[j] for j in i])["f1"], seed=0
    )
    assert (
        row[4] == f"{(f1['ha_dpo'] - f1['baseline']) * 100:+.1f} [{low[0] * 100:+.1f}, {high[0] * 100:+.1f}]"
        " (200 items, one seed)"
    )
    assert low[0] > 0
    # a pooled folder has no items on disk: one seed stays without a claim
    pooled = claims_section(metrics, tmp_path / "elsewhere")
    row = next(r for r in pooled.tables[0].rows if r[1] == "POPE-adversarial F1 up vs the baseline")
    assert row[-1].text == "one seed: no claim"


def _records(folder: Path) -> list[dict]:
    path = folder / "pope_adversarial" / "samples.jsonl" if folder.name != "samples.jsonl" else folder
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_html_colours_each_verdict():
    from tether.core.document import html_table

    html = html_table(claims_section(METRICS).tables[0])
    assert "<span class='helps'>reproduced</span>" in html
