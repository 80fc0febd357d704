"""The study report's claims table: each paper's claim, as the study measures it, with its verdict.

A claim compares two (variant, metric) cells seed by seed, ``a − b``, and names the direction the paper
claims. Its row counts the seeds that go that way, gives the mean difference with its 95% interval, and one
verdict: "reproduced" only when the whole interval lies on the claimed side.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.report import Cell, Section, Table, fmt, mean_interval


@dataclass(frozen=True)
class Claim:
    paper: str
    text: str
    a: tuple[str, str]  # (variant, metric key): the method's side
    b: tuple[str, str]  # the side it is compared with, on the same seed
    higher: bool  # the paper claims a − b > 0


F1, CHAIR_I = "pope_adversarial/f1", "chair/chair_i"
MMHAL, HALLUCINATION = "mmhal/average_score", "mmhal/hallucination_rate"
CLAIMS = (
    Claim("HACL", "POPE-adversarial F1 up vs the baseline", ("hacl", F1), ("baseline", F1), True),
    Claim("HACL", "CHAIR_i down vs the baseline", ("hacl", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim(
        "HACL",
        "modality gap after stage 1 smaller (image–caption centroid distance)",
        ("hacl", "gap/align/centroid_distance"),
        ("baseline", "gap/align/centroid_distance"),
        False,
    ),
    Claim(
        "NoiseBoost",
        "SFT: CHAIR_i down vs plain SFT",
        ("noiseboost_sft", CHAIR_I),
        ("baseline", CHAIR_I),
        False,
    ),
    Claim(
        "NoiseBoost",
        "SFT: POPE-adversarial F1 up vs plain SFT",
        ("noiseboost_sft", F1),
        ("baseline", F1),
        True,
    ),
    Claim(
        "NoiseBoost", "DPO: POPE-adversarial F1 up vs plain DPO", ("noiseboost_dpo", F1), ("ha_dpo", F1), True
    ),
    Claim(
        "NoiseBoost",
        "DPO: CHAIR_i down vs plain DPO",
        ("noiseboost_dpo", CHAIR_I),
        ("ha_dpo", CHAIR_I),
        False,
    ),
    Claim(
        "NoiseBoost",
        "SSL nearer the 100%-label model than 50%-label SFT: POPE-adversarial F1",
        ("noiseboost_ssl", F1),
        ("sft_half", F1),
        True,
    ),
    Claim(
        "NoiseBoost",
        "SSL nearer the 100%-label model than 50%-label SFT: CHAIR_i",
        ("noiseboost_ssl", CHAIR_I),
        ("sft_half", CHAIR_I),
        False,
    ),
    Claim("HA-DPO", "POPE-adversarial F1 up vs the baseline", ("ha_dpo", F1), ("baseline", F1), True),
    Claim("HA-DPO", "CHAIR_i down vs the baseline", ("ha_dpo", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim(
        "Fact-RLHF",
        "reward model with facts more accurate on held-out pairs than without",
        ("fact_rlhf", "reward/accuracy_facts"),
        ("fact_rlhf", "reward/accuracy_vanilla"),
        True,
    ),
    Claim(
        "Fact-RLHF", "PPO: MMHal score up vs the baseline", ("fact_rlhf", MMHAL), ("baseline", MMHAL), True
    ),
    Claim(
        "Fact-RLHF",
        "PPO: MMHal hallucination rate down vs the baseline",
        ("fact_rlhf", HALLUCINATION),
        ("baseline", HALLUCINATION),
        False,
    ),
)


# the report's colours: green where a claim is reproduced, red where the study finds the opposite
VERDICT_STYLE = {"reproduced": "helps", "against the claim, beyond the interval": "hurts"}


def claim_differences(metrics: dict, claim: Claim) -> list[float]:
    """``a − b`` on every seed that has both cells, in seed order."""
    return [
        m[claim.a[0]][claim.a[1]] - m[claim.b[0]][claim.b[1]]
        for _, m in sorted(metrics.items(), key=lambda item: int(item[0]))
        if claim.a[1] in m.get(claim.a[0], {}) and claim.b[1] in m.get(claim.b[0], {})
    ]


def claim_verdict(diffs: list[float], higher: bool) -> str:
    mean, half = mean_interval(diffs)
    if half is None:
        return "one seed: no claim"
    gain_low, gain_high = (mean - half, mean + half) if higher else (-mean - half, -mean + half)
    if gain_low > 0:
        return "reproduced"
    if gain_high < 0:
        return "against the claim, beyond the interval"
    return "the claimed direction, not beyond the interval" if (mean > 0) == higher else "against the claim"


def claims_section(metrics: dict) -> Section | None:
    rows = []
    for claim in CLAIMS:
        diffs = claim_differences(metrics, claim)
        if not diffs:
            continue
        key = claim.a[1]
        with_claim = sum((d > 0) if claim.higher else (d < 0) for d in diffs)
        word = claim_verdict(diffs, claim.higher)
        rows.append(
            [
                claim.paper,
                claim.text,
                f"{claim.a[0]} − {claim.b[0]}"
                if claim.a[1] == claim.b[1]
                else f"{claim.a[1]} − {claim.b[1]}",
                f"{with_claim} of {len(diffs)}",
                Cell(fmt(*mean_interval(diffs), key, signed=True), word, VERDICT_STYLE.get(word, "")),
            ]
        )
    if not rows:
        return None
    text = (
        "Each row: a paper's claim as the study measures it, the paired difference per seed, how many seeds go "
        "the claimed way, and the mean difference with its 95% interval (percentage points; MMHal score and "
        "centroid distance as they are). 'reproduced' only where the whole interval lies on the claimed side."
    )
    table = Table(["paper", "claim", "difference", "seeds the claimed way", "mean ± 95%"], rows)
    return Section("The papers' claims", text, [table])
