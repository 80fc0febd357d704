"""The shift control: is a yes/no gain better grounding, or only a shift of the yes-ratio?

A method that answers "no" more often gains POPE accuracy and F1 on a model biased toward "yes" without
telling objects apart any better ("The Mirage of Performance Gains", arXiv 2504.10020). The control is the
baseline re-thresholded to the method's yes-ratio: on the same items, the baseline answers "yes" to the
``k`` questions of highest yes/no margin (``log P(yes) − log P(no)`` of its fast mode, from the ``p_yes`` its
``samples.jsonl`` records), ``k`` being the method's number of "yes" answers. Equal margins at the cut-off
share the yes answers left equally: the control's counts are the expectation over a random tie-break, which
depends on no item order (true positives then are fractional; accuracy and F1 at a fixed number of yes
answers are linear in them, so this is that expectation exactly).

A method's gain over the control is what it adds beyond moving the cut-off; a gain over the baseline that
disappears against the control is a yes-ratio shift, not grounding. Both gains get a paired item-level
bootstrap interval (``tether.core.stats.bootstrap_interval``), the control re-fitted to each resample.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tether.core.document import Cell, Section, Table
from tether.core.stats import bootstrap_interval
from tether.study.statistics import fmt

GROUNDING = "grounding: above the baseline at the same yes-ratio"
SHIFT = "yes-ratio shift, not grounding"
BELOW = "below the baseline at the same yes-ratio"
NO_GAIN = "no gain"
METRICS = ("accuracy", "f1")


def control_true_positives(margins: np.ndarray, positive: np.ndarray, n_yes: int) -> float:
    """True positives of answering "yes" to the ``n_yes`` items of highest ``margins`` (``positive``: the
    items whose answer is "yes"). Items tied at the cut-off share the yes answers left equally."""
    if n_yes <= 0:
        return 0.0
    cut = np.sort(margins)[::-1][n_yes - 1]
    above, tied = margins > cut, margins == cut
    left = n_yes - int(above.sum())
    return float(positive[above].sum() + left * positive[tied].sum() / tied.sum())


def cut_off(margins: np.ndarray, n_yes: int) -> float:
    """The margin at the cut-off: the lowest margin still answered "yes" (+inf when none is)."""
    return math.inf if n_yes <= 0 else float(np.sort(margins)[::-1][n_yes - 1])


def scores(tp: float, fp: float, tn: float, fn: float, n: int | None = None) -> dict[str, float]:
    """Accuracy and F1 (yes = positive) from the confusion counts, as ``tether.eval.pope.pope_metrics``
    (counts may be fractional: the control's expectation); ``n``: every item, answered yes/no or not."""
    n = tp + fp + tn + fn if n is None else n
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / n if n else 0.0, "f1": f1}


def method_scores(yes: np.ndarray, no: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """The method's own scores; an answer that is neither yes nor no counts as POPE's scorer counts it."""
    return scores(
        float((yes & positive).sum()),
        float((yes & ~positive).sum()),
        float((no & ~positive).sum()),
        float((no & positive).sum()),
        len(positive),
    )


def control_scores(margins: np.ndarray, positive: np.ndarray, n_yes: int) -> dict[str, float]:
    """The baseline's scores re-thresholded to ``n_yes`` yes answers (``control_true_positives``)."""
    tp = control_true_positives(margins, positive, n_yes)
    fp = n_yes - tp
    return scores(tp, fp, float((~positive).sum()) - fp, float(positive.sum()) - tp)


def margin_from_p_yes(p_yes: float) -> float:
    """``log P(yes) − log P(no)`` from ``p_yes = P(yes) / (P(yes) + P(no))`` (the runner's logistic)."""
    if p_yes >= 1.0:
        return math.inf
    if p_yes <= 0.0:
        return -math.inf
    return math.log(p_yes) - math.log1p(-p_yes)


def read_records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def shift_control(method: dict[str, dict], baseline: dict[str, dict], seed: int = 0) -> dict | None:
    """The control for one yes/no result: ``method`` and ``baseline`` are scored records by id (``parsed``,
    ``label``; the baseline's with ``p_yes``). None where the baseline has no margins or no item is shared."""
    ids = [i for i in method if i in baseline and "p_yes" in baseline[i]]
    if len(ids) < 2:
        return None
    positive = np.array([baseline[i]["label"] == "yes" for i in ids])
    yes = np.array([method[i]["parsed"] == "yes" for i in ids])
    no = np.array([method[i]["parsed"] == "no" for i in ids])
    base_yes = np.array([baseline[i]["parsed"] == "yes" for i in ids])
    base_no = np.array([baseline[i]["parsed"] == "no" for i in ids])
    margins = np.array([margin_from_p_yes(baseline[i]["p_yes"]) for i in ids])

    def gains(picks):
        ours = method_scores(yes[picks], no[picks], positive[picks])
        base = method_scores(base_yes[picks], base_no[picks], positive[picks])
        control = control_scores(margins[picks], positive[picks], int(yes[picks].sum()))
        return np.array([ours[k] - other[k] for other in (base, control) for k in METRICS])

    point = gains(np.arange(len(ids)))
    low, high = bootstrap_interval(len(ids), gains, seed=seed)
    n_yes = int(yes.sum())
    triples = [(float(p), float(lo), float(hi)) for p, lo, hi in zip(point, low, high)]
    return {
        "items": len(ids),
        "yes_ratio": n_yes / len(ids),
        "baseline_yes_ratio": float(base_yes.mean()),
        "cut_off": cut_off(margins, n_yes),
        "gain": dict(zip(METRICS, triples[: len(METRICS)])),
        "gain_over_control": dict(zip(METRICS, triples[len(METRICS) :])),
    }


def shift_verdict(control: dict) -> str:
    """At the same number of yes answers, accuracy and F1 both rise with the true positives alone, so one
    metric's gain over the control decides; a gain over the baseline in either metric that the control
    also has is a shift."""
    _, low, high = control["gain_over_control"]["accuracy"]
    if low > 0:
        return GROUNDING
    if any(gain[1] > 0 for gain in control["gain"].values()):
        return SHIFT
    if high < 0:
        return BELOW
    return NO_GAIN


def yes_no_benchmarks(eval_dir: Path) -> list[str]:
    """The benchmarks of the baseline's evaluation whose records are scored yes/no with margins (POPE's
    splits in the study; any yes/no benchmark evaluated in fast mode)."""
    found = []
    for path in sorted(eval_dir.glob("baseline/*/samples.jsonl")):
        first = next(iter(read_records(path).values()), {})
        if "p_yes" in first and first.get("label") in ("yes", "no") and "parsed" in first:
            found.append(path.parent.name)
    return found


def shift_section(metrics: dict, out_dir) -> Section | None:
    """Every variant's every yes/no result against the baseline re-thresholded to its yes-ratio, per seed."""
    rows = []
    for seed in sorted(metrics, key=int):
        eval_dir = Path(out_dir) / f"seed{seed}" / "eval"
        for bench in yes_no_benchmarks(eval_dir):
            baseline = read_records(eval_dir / "baseline" / bench / "samples.jsonl")
            for variant in metrics[seed]:
                path = eval_dir / variant / bench / "samples.jsonl"
                if variant == "baseline" or not path.is_file():
                    continue
                control = shift_control(read_records(path), baseline, seed=int(seed))
                if control:
                    rows.append(_row(seed, variant, bench, control))
    if not rows:
        return None
    text = (
        "For every yes/no result: the method's yes-ratio, the baseline re-thresholded to it (it answers "
        "yes to the questions of highest yes/no margin, log P(yes) − log P(no) of its fast mode, down to "
        "the cut-off that gives the method's number of yes answers; equal margins at the cut-off share "
        "the yes answers left), and the method's gain in accuracy and F1 over the baseline and over that control, with "
        "paired bootstrap intervals over the items (1000 resamples, the control re-fitted to each). A gain "
        f"over the baseline that disappears against the control is a '{SHIFT}': moving the baseline's "
        "cut-off gives it too."
    )
    table = Table(
        [
            "seed",
            "variant",
            "benchmark",
            "yes-ratio (baseline's)",
            "cut-off margin",
            "accuracy gain over the baseline",
            "F1 gain over the baseline",
            "accuracy gain over the control",
            "F1 gain over the control",
            "verdict",
        ],
        rows,
    )
    return Section("Shift control: gain or yes-ratio shift?", text, [table])


def _row(seed: str, variant: str, bench: str, control: dict) -> list:
    def interval(triple):
        mean, low, high = triple
        return f"{fmt(mean, key='f1', signed=True)} [{fmt(low, key='f1', signed=True)}, " + (
            f"{fmt(high, key='f1', signed=True)}]"
        )

    word = shift_verdict(control)
    style = "helps" if word == GROUNDING else "hurts" if word in (SHIFT, BELOW) else ""
    cut = control["cut_off"]
    return [
        seed,
        variant,
        bench,
        f"{fmt(control['yes_ratio'], key='f1')} ({fmt(control['baseline_yes_ratio'], key='f1')})",
        ("+∞" if cut > 0 else "−∞") if math.isinf(cut) else f"{cut:+.3f}",
        *(interval(control[side][k]) for side in ("gain", "gain_over_control") for k in METRICS),
        Cell(word, verdict=style),
    ]
