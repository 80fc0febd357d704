"""The study's analysis pieces on hand-made inputs: reward accuracy with and without facts, the SSL prompts,
the world's word map, attention and PPO metrics, and the report's analysis sections."""

import json
import re

import pytest
import torch

from tether.methods.reward import RewardModel, evaluate_reward_model
from tether.study.analyses import attention_metrics, ppo_metrics, world_word_map
from tether.study.analysis_sections import analysis_sections
from tether.study.data import rule_reward_pairs, ssl_unlabeled_items, world_negatives
from tether.study.report import write_report


class _FactCheckingVLM:
    """A stand-in VLM whose last hidden state says whether the response's shape is among the prompt's facts.

    Feature 0: +1 if the facts mention the response's shape, −1 if facts are given and do not, 0 without
    facts; so a head reading feature 0 is a perfect judge with facts and a coin that always ties without.
    """

    model = torch.nn.Identity()
    hidden_size = 2
    device = torch.device("cpu")

    def encode(self, images, prompts, padding_side="left"):
        return list(prompts)

    def last_hidden_states(self, prompts):
        rows = []
        for prompt in prompts:
            response = re.search(r"Response: (.*)", prompt).group(1)
            shape = response.split()[-1].strip(".")
            if "Facts about the image:" not in prompt:
                rows.append([0.0, 1.0])
            else:
                facts = prompt.split("Facts about the image:")[1].split("Response:")[0]
                rows.append([1.0 if shape in facts else -1.0, 1.0])
        return torch.tensor(rows).unsqueeze(1)  # [n, 1 position, hidden]


def _reward_model(use_facts: bool) -> RewardModel:
    head = torch.nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.bias.zero_()
    return RewardModel(_FactCheckingVLM(), head, use_facts=use_facts)


def test_reward_accuracy_with_and_without_facts():
    from tether.data.rlhf import PreferenceRecord

    pairs = [
        PreferenceRecord(None, "Describe.", "There is a star.", "There is a heart.", facts=["A red star."]),
        PreferenceRecord(None, "Describe.", "There is a ring.", "There is a cross.", facts=["A ring, top."]),
        # the facts support the rejected answer: a fact-reading judge gets this pair wrong
        PreferenceRecord(None, "Describe.", "There is a circle.", "There is a square.", facts=["A square."]),
    ]
    with_facts = evaluate_reward_model(_reward_model(True), pairs, images_root=".", batch_size=2)
    assert with_facts["pairs"] == 3
    assert with_facts["accuracy"] == pytest.approx(2 / 3)
    assert with_facts["mean_margin"] == pytest.approx((2 + 2 - 2) / 3)
    # the vanilla model never sees the facts: every pair ties, and a tie is not a correct ranking
    vanilla = evaluate_reward_model(_reward_model(False), pairs, images_root=".")
    assert vanilla["accuracy"] == 0.0 and vanilla["mean_margin"] == 0.0


def test_ssl_items_ask_a_description_and_random_existence_questions():
    items = ssl_unlabeled_items(["a.png", "b.png"], ["circle", "square", "triangle"], seed=0, questions=2)
    assert [i["image"] for i in items] == ["a.png", "b.png"] + ["a.png"] * 2 + ["b.png"] * 2
    assert [i["prompt"] for i in items[:2]] == ["Describe this image in detail."] * 2
    questions = [i["prompt"] for i in items[2:]]
    assert all(re.fullmatch(r"Is there an? (circle|square|triangle) in the image\?", q) for q in questions)
    assert len(set(questions[:2])) == 2 and len(set(questions[2:])) == 2  # two different shapes per image


def test_rule_reward_pairs_set_each_description_against_its_rewrite(tmp_path):
    from tether.core.io import read_jsonl, write_jsonl

    prompt = "Describe this image in detail."
    descriptions = [
        {"image": "a.png", "prompt": prompt, "response": "There is a small red square at the top."},
        {"image": "b.png", "prompt": prompt, "response": "Nothing to see."},  # nothing to rewrite: left out
        {"image": "b.png", "prompt": prompt, "response": "Two blue circles are left of a star."},
    ]
    facts = {"a.png": ["a small red square at the top"], "b.png": ["two blue circles", "a star"]}
    write_jsonl(tmp_path / "descriptions.jsonl", descriptions)
    negatives = world_negatives(tmp_path / "descriptions.jsonl", seed=0)
    pairs = read_jsonl(rule_reward_pairs(negatives, facts, tmp_path / "pairs.jsonl"))
    assert [(p["image"], p["chosen"]) for p in pairs] == [
        (d["image"], d["response"]) for d in descriptions[::2]
    ]
    for pair in pairs:
        assert pair["prompt"] == prompt and pair["facts"] == facts[pair["image"]]
        assert pair["rejected"] != pair["chosen"]
        # word substitutions only: the same length and style, the hallucination is in the words swapped
        chosen, rejected = pair["chosen"].split(), pair["rejected"].split()
        assert len(rejected) == len(chosen) and sum(a != b for a, b in zip(chosen, rejected)) >= 1
    assert world_negatives(tmp_path / "descriptions.jsonl", seed=0) == negatives  # seeded


def test_world_word_map_covers_synonyms_and_plurals():
    words = world_word_map()
    assert words["box"] == "square" and words["boxes"] == "square" and words["balls"] == "circle"
    assert words["donut"] == "ring" and words["star"] == "star"
    assert "sign" not in words and "plus" not in words  # only one-word names


def test_attention_metrics_flatten_a_report():
    report = {
        "groups": {
            "all": {"tokens": 10, "visual": [0.2, 0.4], "text": [0.8, 0.6]},
            "correct": {"tokens": 3, "visual": [0.5, 0.7], "text": [0.5, 0.3]},
            "hallucinated": {"tokens": 0, "visual": [], "text": []},
        }
    }
    metrics = attention_metrics(report)
    assert metrics["attention/all/mean"] == pytest.approx(0.3)
    assert metrics["attention/correct/layer1"] == 0.7 and metrics["attention/correct/tokens"] == 3
    assert metrics["attention/hallucinated/tokens"] == 0 and "attention/hallucinated/mean" not in metrics


def test_ppo_metrics_read_first_and_last_step(tmp_path):
    log = [
        {"step": 1, "kl": 0.0, "reward": -0.5, "response_length": 20.0},
        {"step": 2, "kl": 0.3, "reward": 0.1, "response_length": 25.0},
        {"step": 3, "kl": 0.7, "reward": 0.4, "response_length": 31.0},
    ]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert ppo_metrics(tmp_path) == {
        "ppo/steps": 3,
        "ppo/kl_last": 0.7,
        "ppo/reward_first": -0.5,
        "ppo/reward_last": 0.4,
        "ppo/response_length_first": 20.0,
        "ppo/response_length_last": 31.0,
    }


def _three_seed_metrics() -> dict:
    """Hand-made metrics: SSL closer to the baseline than sft_half on CHAIR_i on every seed."""
    metrics = {}
    for seed, shift in enumerate([0.0, 0.01, -0.01]):
        base = {"pope_adversarial/f1": 0.70 + shift, "chair/chair_i": 0.20 + shift}
        metrics[str(seed)] = {
            "baseline": {
                **base,
                "gap/final/centroid_distance": 0.50 + shift,
                "gap/align/centroid_distance": 0.60,
                "gap/final/probe_accuracy": 0.70,
                "attention/all/mean": 0.30,
                "attention/all/layer0": 0.30,
                "attention/all/tokens": 100,
            },
            "hacl": {
                **base,
                "gap/final/centroid_distance": 0.40 + shift,
                "gap/align/centroid_distance": 0.45,
                "gap/final/probe_accuracy": 0.80,
            },
            "noiseboost_sft": {
                **base,
                "attention/all/mean": 0.35 + shift,
                "attention/all/layer0": 0.35 + shift,
                "attention/all/tokens": 90,
            },
            "sft_half": {"pope_adversarial/f1": 0.60 + shift, "chair/chair_i": 0.30 + shift},
            "noiseboost_ssl": {
                "pope_adversarial/f1": 0.62 + shift,
                "chair/chair_i": 0.25 + shift,
                "ssl/unlabeled_items": 30,
                "ssl/pseudo_labels_kept": 20,
                "ssl/mean_confidence": 0.9,
            },
            "fact_rlhf": {
                **base,
                "reward/accuracy_facts": 0.9 - shift,
                "reward/accuracy_vanilla": 0.6,
                "reward/held_out_pairs": 10,
                "ppo/kl_last": 0.2,
                "ppo/reward_first": 0.0,
                "ppo/reward_last": 0.5,
                "ppo/response_length_first": 20.0,
                "ppo/response_length_last": 22.0,
            },
        }
    return metrics


def test_analysis_sections_state_the_measured_comparisons(tmp_path):
    sections, findings = analysis_sections(_three_seed_metrics(), tmp_path)
    titles = [s.title for s in sections]
    assert titles == [
        "Semi-supervised NoiseBoost vs 50% labels",
        "Modality gap (HACL)",
        "Attention share on visual tokens (NoiseBoost)",
        "Reward model and PPO (Fact-RLHF)",
    ]
    ssl, gap, attention, reward = findings
    # gaps to the baseline: F1 −0.10 (half) and −0.08 (SSL), CHAIR_i +0.10 and +0.05, the same on every seed
    assert "(sft_half → SSL): POPE adv. F1 -10.0 ± 0.0 → -8.0 ± 0.0; CHAIR_i +10.0 ± 0.0 → +5.0 ± 0.0." in ssl
    assert (
        "better than sft_half (nearer to, or past, the baseline) on 2 of 2 metrics (POPE adv. F1, CHAIR_i)"
        in ssl
    )
    assert "beyond the 95% interval: better on POPE adv. F1, CHAIR_i, worse on none." in ssl
    claimed = "the claimed direction; beyond its 95% interval"
    assert f"-0.150 ± 0.000 after stage 1 ({claimed})" in gap
    assert f"-0.100 ± 0.000 for the final model ({claimed})" in gap
    assert f"probe accuracy (final) +10.0 ± 0.0 points ({claimed})" in gap
    # diffs 0.05, 0.06, 0.04: half-width 4.303 · 0.01 / √3 = 0.0248, so the interval clears zero
    assert f"all tokens +5.0 ± 2.5 points ({claimed})" in attention
    assert f"90.0 ± 2.5 with facts vs 60.0 ± 0.0 without (difference +30.0 ± 2.5 points: {claimed})" in reward


def test_report_has_every_section_and_its_figures(tmp_path):
    metrics = _three_seed_metrics()
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "preset.json").write_text(json.dumps({"name": "hand", "seeds": [0, 1, 2]}))
    report = write_report(tmp_path).read_text()
    for heading in (
        "# tether study: preset `hand`",
        "## More benchmark metrics",
        "## Findings",
        "## Semi-supervised NoiseBoost vs 50% labels",
        "## Modality gap (HACL)",
        "## Attention share on visual tokens (NoiseBoost)",
        "## Reward model and PPO (Fact-RLHF)",
        "![Means over seeds",
    ):
        assert heading in report
    # the SFT-on-half row: F1 gap −10.0 points on every seed: interval 0, verdict hurts
    assert "| sft_half | -10.0 ± 0.0 (hurts) |" in report
    assert (tmp_path / "figures" / "metrics.png").stat().st_size > 1000
    html = (tmp_path / "report.html").read_text()
    assert html.count("<figcaption>") == 1 and "class='helps'" in html and "class='hurts'" in html


def test_claim_wording_says_direction_and_significance():
    from tether.study.analysis_sections import _claim

    assert _claim((-0.02, None), True) == "against the claim; one seed: no claim"
    assert _claim((0.05, 0.1), True) == "the claimed direction; no significant change"
    assert _claim((-0.3, 0.1), False) == "the claimed direction; beyond its 95% interval"
    assert _claim((0.3, 0.1), False) == "against the claim; beyond its 95% interval"
    assert _claim((None, None), True) == "not measured"
