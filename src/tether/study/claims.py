"""The study report's claims table: each paper's claim, as the study measures it, with its verdict and power.

A claim compares two (variant, metric) cells seed by seed, ``a − b``, and names the direction the paper
claims. Its row counts the seeds that go that way, gives the mean difference with its 95% t interval, the
effect the paper reported where it gave one (in the claim's own metric; citations in docs/study.md), the
smallest effect the study detects with 80% power at its number of seeds from the observed spread of the
differences (``tether.core.stats``), and one verdict:

- "reproduced": the whole interval lies on the claimed side;
- "not reproduced (would have detected ≥ X)": it does not, and the study had 80% power against effects of X
  and more (and X is at most the paper's effect, where the paper gave one);
- "inconclusive: the study cannot detect effects below X": it does not, and the paper's effect is below X.

A "not reproduced" whose interval lies wholly on the other side says so too. A POPE claim against the
baseline whose gain the baseline re-thresholded to the method's yes-ratio also has (``tether.study.shift``)
is "reproduced as a yes-ratio shift, not grounding". With one seed there is no spread
over seeds: where the items' records are on disk (a study folder, not a pool), the difference gets an
item-level paired bootstrap interval instead, which says how sure the figure is on these items for this one
trained model, not across training runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tether.core.document import Cell, Section, Table
from tether.core.stats import (
    POWER,
    bootstrap_interval,
    mean_interval,
    minimal_detectable_effect,
    normal_detectable_effect,
    seeds_for_power,
)
from tether.eval.chair import chair_metrics
from tether.eval.pope import pope_metrics
from tether.study.shift import GROUNDING, SHIFT, read_records, shift_control, shift_verdict
from tether.study.statistics import fmt


@dataclass(frozen=True)
class Claim:
    paper: str
    text: str
    a: tuple[str, str]  # (variant, metric key): the method's side
    b: tuple[str, str]  # the side it is compared with, on the same seed
    higher: bool  # the paper claims a − b > 0
    paper_effect: float | None = None  # a − b as the paper reported it, in the metric's unit (None: none)
    source: str = ""  # where the paper reported it (docs/study.md has the full citation)


F1, CHAIR_I = "pope_adversarial/f1", "chair/chair_i"
MMHAL, HALLUCINATION, SHR = "mmhal/average_score", "mmhal/hallucination_rate", "shr/shr"
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
    Claim(
        "HA-DPO",
        "POPE-adversarial F1 up vs the baseline",
        ("ha_dpo", F1),
        ("baseline", F1),
        True,
        paper_effect=0.8254 - 0.8175,
        source="HA-DPO, LLaVA-1.5-7B, POPE adversarial F1 81.75 → 82.54",
    ),
    Claim("HA-DPO", "CHAIR_i down vs the baseline", ("ha_dpo", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim(
        "HA-DPO",
        "SHR down vs the baseline",
        ("ha_dpo", SHR),
        ("baseline", SHR),
        False,
        paper_effect=0.340 - 0.367,
        source="HA-DPO, LLaVA-1.5-7B, SHR 36.7 → 34.0",
    ),
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
    # the training-free decoding strategies (tether.study.decoding) against the same model's greedy decoding;
    # directions as each paper claims them (docs/decoding.md, "Claims for the study")
    Claim("VCD", "POPE-adversarial F1 up vs greedy decoding", ("vcd", F1), ("baseline", F1), True),
    Claim("ICD", "POPE-adversarial F1 up vs greedy decoding", ("icd", F1), ("baseline", F1), True),
    Claim("M3ID", "CHAIR_i down vs greedy decoding", ("m3id", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim("OPERA", "CHAIR_i down vs greedy decoding", ("opera", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim("PAI", "CHAIR_i down vs greedy decoding", ("pai", CHAIR_I), ("baseline", CHAIR_I), False),
    Claim("PAI", "POPE-adversarial F1 up vs greedy decoding", ("pai", F1), ("baseline", F1), True),
)


# the report's colours: green where a claim is reproduced, red where the study finds the opposite
REPRODUCED = "reproduced"
OPPOSITE = "the opposite, beyond the interval"


def claim_differences(metrics: dict, claim: Claim) -> list[float]:
    """``a − b`` on every seed that has both cells, in seed order."""
    return [
        m[claim.a[0]][claim.a[1]] - m[claim.b[0]][claim.b[1]]
        for _, m in sorted(metrics.items(), key=lambda item: int(item[0]))
        if claim.a[1] in m.get(claim.a[0], {}) and claim.b[1] in m.get(claim.b[0], {})
    ]


def claim_verdict(
    interval: tuple[float, float] | None,
    higher: bool,
    detectable: float | None,
    paper_effect: float | None = None,
    key: str = "",
) -> str:
    """The verdict of a claim from the 95% interval of its difference (None: one seed and no items on disk),
    the smallest effect the study detects with 80% power (``detectable``, a size) and the paper's effect;
    ``key`` is the metric, for the unit the sizes are written in."""
    if interval is None:
        return "one seed: no claim"
    gain_low, gain_high = interval if higher else (-interval[1], -interval[0])
    if gain_low > 0:
        return REPRODUCED
    if detectable is None:
        return "not reproduced"
    size = fmt(detectable, key=key)
    if paper_effect is not None and abs(paper_effect) < detectable:
        return f"inconclusive: the study cannot detect effects below {size}"
    word = f"not reproduced (would have detected ≥ {size})"
    return f"{word}; {OPPOSITE}" if gain_high < 0 else word


def seed_level(diffs: list[float]) -> tuple[float, tuple[float, float] | None, float | None, float | None]:
    """Mean, 95% t interval, standard deviation and 80%-power detectable effect of paired differences."""
    mean, half = mean_interval(diffs)
    if half is None:
        return mean, None, None, None
    sd = float(np.std(diffs, ddof=1))
    return mean, (mean - half, mean + half), sd, minimal_detectable_effect(sd, len(diffs))


def item_level(out_dir: Path, seed: str, claim: Claim):
    """One seed's paired item-level bootstrap of ``a − b`` from the two models' ``samples.jsonl`` (POPE and
    CHAIR metrics), or None where the records are not on disk. Returns the difference, its 95% interval and
    the effect detectable with 80% power under the normal approximation of the bootstrap distribution."""
    metrics_fn = _item_metrics(claim.a[1])
    if metrics_fn is None or claim.a[1] != claim.b[1]:
        return None
    bench, name = claim.a[1].split("/")
    seed_dir = out_dir / f"seed{seed}" / "eval"
    paths = [seed_dir / variant / bench / "samples.jsonl" for variant in (claim.a[0], claim.b[0])]
    if not all(p.is_file() for p in paths):
        return None
    a, b = ({r["id"]: r for r in map(json.loads, p.read_text().splitlines())} for p in paths)
    ids = [i for i in a if i in b]
    if len(ids) < 2:
        return None
    a_records, b_records = [a[i] for i in ids], [b[i] for i in ids]

    def difference(picks):
        return (
            metrics_fn([a_records[i] for i in picks])[name] - metrics_fn([b_records[i] for i in picks])[name]
        )

    low, high = bootstrap_interval(len(ids), difference, seed=int(seed))
    low, high = float(low[0]), float(high[0])
    return difference(np.arange(len(ids))), (low, high), normal_detectable_effect(low, high), len(ids)


def _only_a_shift(metrics: dict, out_dir: Path, claim: Claim) -> bool:
    """A yes/no claim against the baseline whose gain the baseline re-thresholded to the method's yes-ratio
    also has, on every seed with records (``tether.study.shift``): a shift of the yes-ratio, not grounding."""
    bench = claim.a[1].split("/")[0]
    if claim.b[0] != "baseline" or claim.a[1] != claim.b[1] or not bench.startswith("pope_"):
        return False
    verdicts = []
    for seed in metrics:
        eval_dir = out_dir / f"seed{seed}" / "eval"
        paths = [eval_dir / variant / bench / "samples.jsonl" for variant in (claim.a[0], "baseline")]
        if all(p.is_file() for p in paths):
            control = shift_control(*(read_records(p) for p in paths), seed=int(seed))
            if control:  # None where the baseline's records hold no margins
                verdicts.append(shift_verdict(control))
    return bool(verdicts) and all(v != GROUNDING for v in verdicts)


def _item_metrics(key: str):
    if key.startswith("pope_"):
        return pope_metrics
    if key.startswith("chair/"):
        return chair_metrics
    return None


def claims_section(metrics: dict, out_dir=None) -> Section | None:
    """The claims table, and (with two seeds or more) how many seeds would detect each paper's effect."""
    rows, power_rows, item_rows = [], [], 0
    for claim in CLAIMS:
        diffs = claim_differences(metrics, claim)
        if not diffs:
            continue
        key = claim.a[1]
        mean, interval, sd, detectable = seed_level(diffs)
        level = f"{len(diffs)} seed" + ("s" if len(diffs) > 1 else "")
        if interval is None and out_dir is not None:
            seed = next(s for s in sorted(metrics) if claim_differences({s: metrics[s]}, claim))
            found = item_level(Path(out_dir), seed, claim)
            if found:
                mean, interval, detectable, n_items = found
                level, item_rows = f"{n_items} items, one seed", item_rows + 1
        with_claim = sum((d > 0) if claim.higher else (d < 0) for d in diffs)
        word = claim_verdict(interval, claim.higher, detectable, claim.paper_effect, key)
        if word == REPRODUCED and out_dir is not None and _only_a_shift(metrics, Path(out_dir), claim):
            word = f"{REPRODUCED} as a {SHIFT} (shift control)"
        style = "helps" if word == REPRODUCED else "hurts" if OPPOSITE in word else ""
        spread = (
            "" if interval is None else " [{}, {}]".format(*(fmt(x, key=key, signed=True) for x in interval))
        )
        rows.append(
            [
                claim.paper,
                claim.text,
                f"{claim.a[0]} − {claim.b[0]}"
                if claim.a[1] == claim.b[1]
                else f"{claim.a[1]} − {claim.b[1]}",
                f"{with_claim} of {len(diffs)}",
                fmt(mean, key=key, signed=True) + spread + f" ({level})",
                "–" if claim.paper_effect is None else fmt(claim.paper_effect, key=key, signed=True),
                "–" if detectable is None else fmt(detectable, key=key),
                Cell(word, verdict=style),
            ]
        )
        if sd is not None:
            power_rows.append(_power_row(claim, mean, sd, len(diffs), key))
    if not rows:
        return None
    text = (
        "Each row: a paper's claim as the study measures it (the paired difference a − b per seed), how "
        "many seeds go the claimed way, the mean difference with its 95% interval, the effect the paper "
        "reported in the same metric where it gave one (docs/study.md cites each), and the smallest effect "
        f"this study detects with {POWER:.0%} power at its number of seeds, from the observed spread of the "
        "differences (percentage points; MMHal score and centroid distance as they are). 'reproduced' only "
        "where the whole interval lies on the claimed side; 'inconclusive' where the paper's effect is below "
        "what the study can detect."
    )
    if item_rows:
        text += (
            " With one seed, rows marked 'items' carry a paired bootstrap interval over the evaluation items "
            "(1000 resamples): it says how sure the difference is for this one trained model on these items, "
            "not whether another training run would give it."
        )
    table = Table(
        [
            "paper",
            "claim",
            "difference",
            "seeds the claimed way",
            "mean [95% interval]",
            "paper's effect",
            f"detectable at {POWER:.0%} power",
            "verdict",
        ],
        rows,
    )
    tables = [table]
    if power_rows:
        tables.append(
            Table(
                [
                    "paper",
                    "claim",
                    "sd of the differences",
                    "seeds to detect the paper's effect",
                    "seeds to detect the observed mean",
                ],
                power_rows,
            )
        )
        text += (
            f" The second table: how many seeds a paired t test (5%, two-sided) needs for {POWER:.0%} power "
            "against the paper's effect and against the mean difference observed here (in the claimed "
            "direction only), given the observed spread."
        )
    sources = [
        f"{claim.paper}, {claim.text}: {fmt(claim.paper_effect, key=claim.a[1], signed=True)} "
        f"({claim.source})"
        for claim in CLAIMS
        if claim.paper_effect is not None and any(row[1] == claim.text for row in rows)
    ]
    notes = [f"The papers' effects: {'; '.join(sources)}."] if sources else []
    return Section("The papers' claims", text, tables, notes=notes)


def _power_row(claim: Claim, mean: float, sd: float, n: int, key: str) -> list[str]:
    def needed(effect):
        seeds = seeds_for_power(effect, sd)
        return "more than 10000" if seeds is None else str(seeds)

    paper = "–" if claim.paper_effect is None else needed(claim.paper_effect)
    observed = "– (against the claim)" if (mean > 0) != claim.higher or mean == 0 else needed(mean)
    return [claim.paper, claim.text, fmt(sd, key=key), paper, observed]
