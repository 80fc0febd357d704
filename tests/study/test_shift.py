"""The shift control (tether.study.shift): the baseline re-thresholded to a method's yes-ratio, by hand."""

import json
import math

import numpy as np
import pytest

from tether.eval.pope import pope_metrics
from tether.study.shift import (
    GROUNDING,
    SHIFT,
    control_scores,
    control_true_positives,
    cut_off,
    margin_from_p_yes,
    method_scores,
    shift_control,
    shift_verdict,
)

# six questions: margins of the baseline, and which ones are truly "yes"
MARGINS = np.array([3.0, 2.0, 2.0, 1.0, 0.0, -1.0])
POSITIVE = np.array([True, True, False, True, False, False])


def test_the_control_against_a_hand_computation():
    # two yes answers: 3.0 is above the cut-off (2.0, a true yes); the two items tied at 2.0 (one true yes,
    # one not) share the one yes answer left: 1 + 1 · 1/2 = 1.5 true positives
    assert control_true_positives(MARGINS, POSITIVE, 2) == 1.5
    assert cut_off(MARGINS, 2) == 2.0
    # three: both tied items are yes, 1 + 2 · 1/2 = 2; none: 0; all six: the 3 true yeses
    assert control_true_positives(MARGINS, POSITIVE, 3) == 2.0
    assert control_true_positives(MARGINS, POSITIVE, 0) == 0.0 and cut_off(MARGINS, 0) == math.inf
    assert control_true_positives(MARGINS, POSITIVE, 6) == 3.0
    # TP 1.5, FP 0.5, TN 2.5, FN 1.5: accuracy 4/6; precision 0.75, recall 0.5, F1 0.6
    scores = control_scores(MARGINS, POSITIVE, 2)
    assert scores["accuracy"] == pytest.approx(4 / 6) and scores["f1"] == pytest.approx(0.6)
    # the tie rule depends on no item order
    order = np.array([5, 2, 4, 1, 3, 0])
    assert control_true_positives(MARGINS[order], POSITIVE[order], 2) == 1.5


def test_method_scores_are_popes_scorer():
    parsed = ["yes", "no", "yes", "unknown", "no", "yes"]
    records = [{"parsed": p, "label": "yes" if t else "no"} for p, t in zip(parsed, POSITIVE)]
    yes, no = np.array([p == "yes" for p in parsed]), np.array([p == "no" for p in parsed])
    ours, official = method_scores(yes, no, POSITIVE), pope_metrics(records)
    assert ours["accuracy"] == pytest.approx(official["accuracy"]) and ours["f1"] == pytest.approx(
        official["f1"]
    )


def test_margins_come_back_from_p_yes():
    assert margin_from_p_yes(1 / (1 + math.exp(-1.5))) == pytest.approx(1.5)
    assert margin_from_p_yes(1.0) == math.inf and margin_from_p_yes(0.0) == -math.inf


def records(answers, labels, p_yes=None):
    return {
        str(i): {"parsed": a, "label": t, **({} if p_yes is None else {"p_yes": p_yes[i]})}
        for i, (a, t) in enumerate(zip(answers, labels))
    }


def test_a_moved_cut_off_is_a_shift_and_a_better_ranking_is_grounding():
    rng = np.random.default_rng(0)
    labels = ["yes"] * 200 + ["no"] * 200
    # a baseline biased toward yes: its margins rank the questions a little, its cut-off (0) is too low
    margins = np.concatenate([rng.normal(2.0, 1.0, 200), rng.normal(1.0, 1.0, 200)])
    p_yes = 1 / (1 + np.exp(-margins))
    baseline = records(["yes" if m > 0 else "no" for m in margins], labels, p_yes)
    # a method that only moves the cut-off up: better than the baseline, no better than the control
    shifted = shift_control(records(["yes" if m > 1.5 else "no" for m in margins], labels), baseline)
    assert shifted["gain"]["accuracy"][1] > 0
    assert shifted["gain_over_control"]["accuracy"] == (0.0, 0.0, 0.0)
    assert shift_verdict(shifted) == SHIFT
    # a method that answers from the truth on a third of the items, at the same cut-off otherwise
    truthful = [
        "yes" if (t == "yes" if i % 3 == 0 else m > 1.5) else "no"
        for i, (m, t) in enumerate(zip(margins, labels))
    ]
    grounded = shift_control(records(truthful, labels), baseline)
    assert grounded["gain_over_control"]["accuracy"][1] > 0 and shift_verdict(grounded) == GROUNDING


def test_a_pope_claim_the_control_explains_is_reported_as_a_shift(tmp_path):
    from tether.eval.pope import pope_metrics
    from tether.study.claims import claims_section

    rng = np.random.default_rng(1)
    labels = ["yes"] * 200 + ["no"] * 200
    margins = np.concatenate([rng.normal(3.0, 1.0, 200), rng.normal(1.5, 1.0, 200)])  # biased toward yes
    p_yes = 1 / (1 + np.exp(-margins))
    answers = {"baseline": ["yes" if m > 0 else "no" for m in margins]}
    answers["vcd"] = ["yes" if m > 2.25 else "no" for m in margins]  # the same ranking, a higher cut-off
    metrics = {"0": {}}
    for variant, said in answers.items():
        path = tmp_path / "seed0" / "eval" / variant / "pope_adversarial" / "samples.jsonl"
        path.parent.mkdir(parents=True)
        found = records(said, labels, p_yes if variant == "baseline" else None)
        path.write_text("".join(json.dumps({"id": i, **r}) + "\n" for i, r in found.items()))
        metrics["0"][variant] = {"pope_adversarial/f1": pope_metrics(list(found.values()))["f1"]}
    section = claims_section(metrics, tmp_path)
    row = next(r for r in section.tables[0].rows if r[0] == "VCD")
    # F1 rises beyond its interval, and the baseline at VCD's yes-ratio has exactly the same answers
    assert row[-1].text == f"reproduced as a {SHIFT} (shift control)"
