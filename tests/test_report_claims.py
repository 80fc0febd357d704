"""The report's claims table: verdicts by hand, and rows from the shipped seeds 0–2 (docs/results)."""

import json
import statistics
from pathlib import Path

from tether.report_claims import CLAIMS, claim_differences, claim_verdict, claims_section

METRICS = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "results" / "study-full" / "metrics.json").read_text()
)


def test_verdicts_by_hand():
    # [1, 2, 3]: mean 2, interval 4.303 · 1 / √3 = 2.48 → crosses zero; [2, 3, 4] does not
    assert claim_verdict([1.0, 2.0, 3.0], higher=True) == "the claimed direction, not beyond the interval"
    assert claim_verdict([2.0, 2.5, 3.0], higher=True) == "reproduced"
    assert claim_verdict([2.0, 2.5, 3.0], higher=False) == "against the claim, beyond the interval"
    assert claim_verdict([-2.0, -2.5, -3.0], higher=False) == "reproduced"
    assert claim_verdict([1.0, -4.0, 1.0], higher=True) == "against the claim"
    assert claim_verdict([5.0], higher=True) == "one seed: no claim"


def test_rows_from_the_shipped_seeds():
    chair = next(c for c in CLAIMS if c.paper == "HA-DPO" and "CHAIR_i" in c.text)
    diffs = claim_differences(METRICS, chair)
    by_hand = [METRICS[s]["ha_dpo"]["chair/chair_i"] - METRICS[s]["baseline"]["chair/chair_i"] for s in "012"]
    assert diffs == by_hand and all(d < 0 for d in diffs)
    half = 4.303 * statistics.stdev(by_hand) / 3**0.5 * 100
    section = claims_section(METRICS)
    rows = {(r[0], r[1]): r for r in section.tables[0].rows}
    row = rows[("HA-DPO", "CHAIR_i down vs the baseline")]
    assert row[3] == "3 of 3"
    assert row[4].text == f"{statistics.mean(by_hand) * 100:+.1f} ± {half:.1f}"
    # the reward model's claim compares two metrics of one variant
    reward = rows[("Fact-RLHF", "reward model with facts more accurate on held-out pairs than without")]
    assert reward[2] == "reward/accuracy_facts − reward/accuracy_vanilla"
    assert len(rows) == len(CLAIMS)  # every variant ran: every claim has its row


def test_a_study_without_the_variants_has_no_claims_table():
    only_baseline = {s: {"baseline": m["baseline"]} for s, m in METRICS.items()}
    assert claims_section(only_baseline) is None
