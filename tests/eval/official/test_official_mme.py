"""MME: tether's default scoring equals the official eval tool (``calculation.py``), on eval-tool folders
and on LLaVA-style answers through LLaVA's converter."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from official_cli import RefusedError, score_json
from official_scorers import OfficialCrash, llava_mme_convert, mme_task_score

# Predictions may hold the Unicode separators that str.splitlines() splits on and readlines() does not.
PIECES = ["Yes", "No", "yes", "no", "Maybe", " ", ",", "eyes", "Not", "\u2028", "\x85", "\x0c", "\x1c", "n"]
predictions = st.lists(st.sampled_from(PIECES), max_size=4).map("".join)
row = st.tuples(
    st.sampled_from(["1.png", "2.png", "3.png"]),
    st.sampled_from(["Is it red?", "Is it blue?"]),
    st.sampled_from(["Yes", "No", "yes", "no"]),
    predictions,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["existence", "color", "OCR", "code_reasoning"]),
                       st.lists(row, min_size=1, max_size=8), min_size=1, max_size=3))  # fmt: skip
def test_eval_tool_equals_official(files):
    texts = {task: "".join("\t".join(r) + "\n" for r in rows) for task, rows in files.items()}
    try:
        official = {task: mme_task_score(text) for task, text in texts.items()}
    except OfficialCrash:
        official = None
    with tempfile.TemporaryDirectory() as folder:
        for task, text in texts.items():
            (Path(folder) / f"{task}.txt").write_text(text, encoding="utf-8")
        try:
            metrics = score_json("eval", "mme", "score", "--eval-tool", folder)
        except RefusedError:
            metrics = None
    assert (official is None) == (metrics is None)  # refused exactly where the official tool stops
    for task, score in (official or {}).items():
        assert metrics[f"{task}/score"] == pytest.approx(score, abs=1e-9)


def _llava_files(folder: Path, images: list[str], answers: list[dict]):
    questions = folder / "llava_mme.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question_id": image, "image": image, "text": text, "category": image.split("/")[0]})
            + "\n"
            for image in images
            for text in (f"{image} yes?", f"{image} no?")
        )
    )
    answer_file = folder / "answers.jsonl"
    answer_file.write_text("".join(json.dumps(a) + "\n" for a in answers))
    return questions, answer_file


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_llava_answers_equal_official_chain(data):
    images = data.draw(st.lists(st.sampled_from(["color/a.png", "color/b.png", "OCR/c.png", "OCR/d.png"]),
                                min_size=1, unique=True))  # fmt: skip
    questions = [(image, f"{image} {truth}?") for image in images for truth in ("yes", "no")]
    order = data.draw(st.permutations(questions))
    texts = predictions.filter(str.strip)  # tether refuses an empty answer (docs/evaluation.md)
    answers = [{"question_id": image, "prompt": prompt, "text": data.draw(texts)} for image, prompt in order]
    # LLaVA's layout has no answer key: the first question of an image is "Yes", the second "No".
    key = {(image.split("/")[0], image.split("/")[1], prompt): prompt.rsplit(" ", 1)[1][:-1].capitalize()
           for image, prompt in questions}  # fmt: skip
    official = {task: mme_task_score(text) for task, text in llava_mme_convert(answers, key).items()}
    with tempfile.TemporaryDirectory() as folder:
        q, a = _llava_files(Path(folder), images, answers)
        metrics = score_json("eval", "mme", "score", "--questions", q, "--answers", a)
    for task, score in official.items():
        assert metrics[f"{task}/score"] == pytest.approx(score, abs=1e-9)


def test_case4_eval_tool_lines_split_on_line_ends_only(tmp_path):
    """Issue 27 case 4: a prediction holding U+2028 made tether split the line and refuse the folder."""
    (tmp_path / "color.txt").write_text("1.png\tIs it red?\tYes\tYes\u2028it is\n1.png\tIs it blue?\tNo\tNo\n")
    metrics = score_json("eval", "mme", "score", "--eval-tool", tmp_path)
    assert metrics["color/score"] == mme_task_score((tmp_path / "color.txt").read_text()) == 200.0


def test_case5_llava_answers_in_reverse_order_are_matched_by_prompt(tmp_path):
    """Issue 27 case 5: an image's two answers in reverse order stopped tether ("answer's prompt
    differs"); LLaVA's converter matches them by prompt and scores them."""
    answers = [
        {"question_id": "color/a.png", "prompt": "color/a.png no?", "text": "No"},
        {"question_id": "color/a.png", "prompt": "color/a.png yes?", "text": "Yes"},
    ]
    q, a = _llava_files(tmp_path, ["color/a.png"], answers)
    assert score_json("eval", "mme", "score", "--questions", q, "--answers", a)["color/score"] == 200.0


def test_case6_image_with_one_question_is_refused_or_scored_when_corrected(tmp_path):
    """Issue 27 case 6: the official tool refuses an image with one question; tether scored it silently.
    Now refused by default, naming the file and line, and scored (by image) only with --corrected."""
    (tmp_path / "color.txt").write_text("1.png\tIs it red?\tYes\tYes\n1.png\tIs it blue?\tNo\tNo\n2.png\tRed?\tYes\tNo\n")
    with pytest.raises(OfficialCrash):
        mme_task_score((tmp_path / "color.txt").read_text())
    with pytest.raises(RefusedError, match=r"color.txt:3: subtask 'color' has an odd number of questions"):
        score_json("eval", "mme", "score", "--eval-tool", tmp_path)
    corrected = score_json("eval", "mme", "score", "--eval-tool", tmp_path, "--corrected")
    assert corrected["color/score"] == pytest.approx(100 * 2 / 3 + 100 * 1 / 2)
