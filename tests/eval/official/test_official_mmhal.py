"""MMHal-Bench: tether's scoring equals the official ``eval_gpt4.py`` on generated judge replies."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from official_cli import score_json
from official_scorers import mmhal

from tether.eval.mmhal import QUESTION_TYPES

PIECES = ["rating: 4", "Rating: 2", "RATING: 6", "rating:5", "rating: 7", "rating: 0", "text", "\n", " "]
replies = st.lists(st.sampled_from(PIECES), max_size=4).map("".join)


@settings(max_examples=25, deadline=None)
@given(st.lists(replies, min_size=96, max_size=96))
def test_mmhal_equals_official(judge_replies):
    official = mmhal(judge_replies)
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.json"
        template.write_text(json.dumps([
            {"question_type": QUESTION_TYPES[k % 8], "image_content": [], "question": "q", "gt_answer": "a",
             "image_src": f"https://x/{k}.jpg"} for k in range(96)
        ]))  # fmt: skip
        judge = Path(folder) / "judge.json"
        judge.write_text(json.dumps(judge_replies))
        metrics = score_json("eval", "mmhal", "score", "--template", template, "--judge-output", judge)
    assert metrics["average_score"] == pytest.approx(official["average_score"], abs=1e-12)
    assert metrics["hallucination_rate"] == pytest.approx(official["hallucination_rate"], abs=1e-12)
    for question_type, value in zip(QUESTION_TYPES, official["per_type"]):
        assert metrics[f"{question_type}/average_score"] == pytest.approx(value, abs=1e-12)
