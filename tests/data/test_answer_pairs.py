"""HA-DPO's yes/no pairs (`tether data answer-pairs`): wrong answers paired with the truth, balanced."""

import json
from pathlib import Path

import pytest

from tether.cli import main
from tether.core.errors import DataError
from tether.core.io import read_jsonl
from tether.data.answer_pairs import (
    AnswerPairSettings,
    YesNoQuestion,
    answer_pairs,
    load_yes_no_questions,
)

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


def question(image: str, text: str, answer: str) -> YesNoQuestion:
    return YesNoQuestion(image, text, answer, "q.jsonl", 1)


def test_questions_load_in_pope_and_tether_fields_with_errors_naming_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"question_id": 1, "image": "a.png", "text": "Is there a star in the image?", "label": "yes"},
        {"image": "b.png", "question": "Is there a cross?", "answer": "No."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_yes_no_questions(path)
    assert [(q.image, q.question, q.answer, q.line) for q in loaded] == [
        ("a.png", "Is there a star in the image?", "yes", 1),
        ("b.png", "Is there a cross?", "no", 2),
    ]
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "answer": "maybe"}) + "\n")
    with pytest.raises(DataError, match=r"q\.jsonl:2: answer must be yes or no"):
        load_yes_no_questions(path)
    path.write_text(json.dumps({"image": "a.png", "text": "Is there?"}) + "\n")
    with pytest.raises(DataError, match=r"q\.jsonl:1: missing field 'label'"):
        load_yes_no_questions(path)


def test_wrong_answers_become_pairs_and_balancing_evens_the_preferred_answers():
    # a model that says yes to everything: wrong on the three absent objects, right on the two present
    questions = [question(f"{i}.png", f"Is there a shape {i}?", "no") for i in range(3)]
    questions += [question(f"{i}.png", f"Is there a shape {i}?", "yes") for i in range(3, 5)]
    answers = ["Yes, there is."] * 5

    unbalanced, counts = answer_pairs(questions, answers, AnswerPairSettings(balance=False))
    assert counts == {
        "questions": 5,
        "wrong": 3,
        "wrong_chosen_yes": 0,
        "selected": 3,
        "balancing": 0,
        "pairs": 3,
        "chosen_yes": 0,
    }
    assert {(p["chosen"], p["rejected"]) for p in unbalanced} == {("No", "Yes")}  # bare words both
    assert all(p["provenance"]["model_correct"] is False for p in unbalanced)
    assert {p["provenance"]["model_answer"] for p in unbalanced} == {"Yes, there is."}

    balanced, counts = answer_pairs(questions, answers, AnswerPairSettings(balance=True))
    assert counts["balancing"] == 2 and counts["pairs"] == 5  # all the model got right, 2 < 3 needed
    added = [p for p in balanced if p["provenance"]["model_correct"]]
    assert {(p["chosen"], p["rejected"]) for p in added} == {("Yes", "No")}

    more_right = questions + [question(f"{i}.png", f"Is there a shape {i}?", "yes") for i in range(5, 9)]
    balanced, counts = answer_pairs(more_right, ["Yes"] * 9, AnswerPairSettings(balance=True, seed=1))
    chosen = [p["chosen"] for p in balanced]
    assert counts["balancing"] == 3 and chosen.count("Yes") == chosen.count("No") == 3


def test_select_all_pairs_every_question_and_repeats_the_short_side():
    # 7 absent objects, 2 present; the model is right on 4 absent and 1 present
    questions = [question(f"{i}.png", f"Is there a shape {i}?", "no") for i in range(7)]
    questions += [question(f"{i}.png", f"Is there a shape {i}?", "yes") for i in range(7, 9)]
    answers = ["No"] * 4 + ["Yes"] * 3 + ["Yes", "No"]

    pairs, counts = answer_pairs(questions, answers, AnswerPairSettings(select="all", balance=False))
    assert counts["selected"] == counts["pairs"] == 9 and counts["wrong"] == 4
    assert sorted(p["prompt"] for p in pairs) == sorted(q.question for q in questions)
    assert sum(p["provenance"]["model_correct"] for p in pairs) == 5
    assert all({p["chosen"], p["rejected"]} == {"Yes", "No"} for p in pairs)

    pairs, counts = answer_pairs(questions, answers, AnswerPairSettings(select="all", seed=3))
    # 7 prefer No, 2 prefer Yes: the two yes questions drawn again until 7 (rounds without replacement)
    assert counts["balancing"] == 5 and counts["chosen_yes"] == 7 and counts["pairs"] == 14
    yes_prompts = [p["prompt"] for p in pairs if p["chosen"] == "Yes"]
    assert sorted(set(yes_prompts)) == ["Is there a shape 7?", "Is there a shape 8?"]
    assert sorted(yes_prompts.count(x) for x in set(yes_prompts)) == [3, 4]

    with pytest.raises(DataError, match="unknown answer-pair selection 'most'"):
        answer_pairs(questions, answers, AnswerPairSettings(select="most"))


def test_answer_pairs_cli_on_the_world_preference_split(world_checkpoint, tmp_path, capsys):
    from tether.core.images import open_image
    from tether.decoding.yes_no import fast_yes_no
    from tether.models import load
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    world = tmp_path / "world"
    build_world(load_world_config(SMOKE_CONFIG, ["n_pref=6"]), world)
    questions_file = world / "text" / "pref_questions.jsonl"
    out = tmp_path / "answer_pairs.jsonl"
    args = ["data", "answer-pairs", str(world_checkpoint), "--questions", str(questions_file)]
    assert main(args + ["--images", str(world / "images"), "--out", str(out), "--no-progress"]) == 0

    # the pairs are exactly the questions the model gets wrong, plus balancing ones it gets right
    vlm = load(world_checkpoint)
    questions = load_yes_no_questions(questions_file)
    wrong = set()
    for image in {q.image for q in questions}:
        asked = [q for q in questions if q.image == image]
        answers = fast_yes_no(vlm, open_image(world / "images", image), [q.question for q in asked])
        wrong |= {(q.image, q.question) for q, a in zip(asked, answers) if a.lower() != q.answer}
    pairs = read_jsonl(out)
    assert {(p["images"][0], p["prompt"]) for p in pairs if not p["provenance"]["model_correct"]} == wrong
    run = json.loads(out.with_suffix(".run.json").read_text())
    assert run["counts"]["wrong"] == len(wrong) and run["counts"]["pairs"] == len(pairs)
    chosen = [p["chosen"].lower() for p in pairs]
    short = min(("yes", "no"), key=chosen.count)
    right_on_short_side = [q for q in questions if q.answer == short and (q.image, q.question) not in wrong]
    # as even as the correct answers allow: equal, or every correct answer on the short side used
    assert chosen.count("yes") == chosen.count("no") or chosen.count(short) == len(
        [w for w in wrong if any(q.answer == short and (q.image, q.question) == w for q in questions)]
    ) + len(right_on_short_side)
    assert "versions" in run["environment"]

    # --select all: every question once, the short side's questions again until both sides are equal
    everything = tmp_path / "all_pairs.jsonl"
    assert main(args + ["--images", str(world / "images"), "--out", str(everything), "--select", "all"]) == 0
    pairs = read_jsonl(everything)
    assert {(p["images"][0], p["prompt"]) for p in pairs} == {(q.image, q.question) for q in questions}
    assert sum(p["chosen"] == "Yes" for p in pairs) == sum(p["chosen"] == "No" for p in pairs)
    assert json.loads(everything.with_suffix(".run.json").read_text())["settings"]["select"] == "all"

    # runs never mix (issue 23): the same inputs do nothing, other settings are refused naming them
    before = out.read_bytes()
    assert main(args + ["--images", str(world / "images"), "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out and out.read_bytes() == before
    assert main(args + ["--images", str(world / "images"), "--out", str(out), "--select", "all"]) == 2
    assert f"{out}: was made with other settings.select" in capsys.readouterr().err


def test_an_unknown_answer_mode_is_refused_before_any_image_is_read(tmp_path):
    from tether.data.answer_pairs import model_answers

    questions = [question("missing.png", "Is there a star?", "yes")]
    with pytest.raises(DataError, match="unknown answer mode 'sample'"):
        model_answers(None, questions, tmp_path, AnswerPairSettings(mode="sample"), progress=False)
