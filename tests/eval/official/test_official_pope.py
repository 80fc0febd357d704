"""POPE: tether's default scoring equals the official (LLaVA ``eval_pope.py``) on generated answers."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from official_cli import score_json
from official_scorers import OfficialCrash, pope

PIECES = ["Yes", "No", "no", "not", "NO", "Nope", "yes", ",", ".", " ", "there", "is", "a", "dog", "No,", "\n"]
answer_texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("".join).filter(str.strip)


def _write(folder: Path, labels: list[str], texts: list[str]) -> tuple[Path, Path]:
    questions = folder / "coco_pope_random.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question_id": k, "image": f"{k}.jpg", "text": "Is there a dog?", "label": label}) + "\n"
            for k, label in enumerate(labels, start=1)
        )
    )
    answers = folder / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"question_id": k, "text": t}) + "\n" for k, t in enumerate(texts, start=1))
    )
    return questions, answers


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["yes", "no"]), answer_texts), min_size=1, max_size=12))
def test_pope_equals_official(pairs):
    labels, texts = [label for label, _ in pairs], [text for _, text in pairs]
    try:
        official = pope(texts, labels)
    except OfficialCrash:
        return  # precision or recall of nothing: the official divides by zero, tether reports 0.0
    with tempfile.TemporaryDirectory() as folder:
        questions, answers = _write(Path(folder), labels, texts)
        metrics = score_json("eval", "pope", "score", "--questions", questions, "--answers", answers)
    for name, value in official.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name


def test_case7_skip_invalid_skips_an_empty_answer_with_its_question(tmp_path):
    """Issue 27 case 7: --skip-invalid with one empty answer failed on the count; now the empty answer's
    line and the question it stands against are skipped together, and counted."""
    labels = ["yes", "no", "yes", "no"]
    texts = ["Yes", "", "No", "No"]
    questions, answers = _write(tmp_path, labels, texts)
    metrics = score_json(
        "eval", "pope", "score", "--questions", questions, "--answers", answers, "--skip-invalid",
        "--out", tmp_path / "run",
    )  # fmt: skip
    kept = [0, 2, 3]
    official = pope([texts[k] for k in kept], [labels[k] for k in kept])
    assert metrics["n"] == 3 and metrics["skipped_lines"] == 1
    assert metrics["f1"] == pytest.approx(official["f1"]) and metrics["accuracy"] == official["accuracy"]
    notes = json.loads((tmp_path / "run" / "results.json").read_text())["notes"]
    assert notes["skipped_questions"] == 1
