import json

import pytest
from eval_helpers import write_jsonl

from tether.core.errors import DataError
from tether.eval.mme import Mme, load_eval_tool, mme_metrics, parse_mme_answer


@pytest.mark.parametrize(
    "reply, parsed",
    [
        ("Yes", "yes"),
        ("no", "no"),
        ("YES.", "yes"),
        ("Yes, it is", "yes"),
        ("No, it is not", "no"),
        ("Not really", "no"),  # "no" in the first 4 characters
        ("I think yes", "other"),  # only the first 4 characters are read
        ("Nope", "no"),
        ("eyes", "yes"),  # "yes" inside the first 4 characters counts
        ("", "other"),
    ],
)
def test_parse_follows_official_rule(reply, parsed):
    assert parse_mme_answer(reply) == parsed


def test_metrics_hand_computed():
    # existence: image a both right, image b one right -> acc 3/4, acc+ 1/2 -> 125
    # code_reasoning: one image, both wrong -> 0
    records = [
        {"subtask": "existence", "pair": "a", "correct": True},
        {"subtask": "existence", "pair": "a", "correct": True},
        {"subtask": "existence", "pair": "b", "correct": True},
        {"subtask": "existence", "pair": "b", "correct": False},
        {"subtask": "code_reasoning", "pair": "c", "correct": False},
        {"subtask": "code_reasoning", "pair": "c", "correct": False},
    ]
    m = mme_metrics(records)
    assert m["existence/score"] == pytest.approx(125.0)
    assert m["perception"] == pytest.approx(125.0)
    assert m["cognition"] == 0.0 and m["total"] == pytest.approx(125.0)


def test_llava_13b_reproduces_published_scores(data_dir, run_cli):
    mme = data_dir / "mme"
    code, out, _ = run_cli(
        "eval",
        "mme",
        "score",
        "--questions",
        mme / "llava_mme.jsonl",
        "--answers",
        mme / "llava-v1.5-13b.jsonl",
        "--json",
    )
    metrics = json.loads(out)
    assert code == 0
    assert round(metrics["perception"], 2) == 1531.32
    assert round(metrics["cognition"], 2) == 295.36


def test_llava_items_label_rule(data_dir):
    items = Mme().load_items(data_dir / "mme" / "llava_mme.jsonl")
    assert len(items) == 2374
    assert items[0].id == "code_reasoning/0020.png#1" and items[0].meta["label"] == "yes"
    assert items[1].id == "code_reasoning/0020.png#2" and items[1].meta["label"] == "no"


def test_eval_tool_layout(tmp_path, run_cli):
    (tmp_path / "existence.txt").write_text(
        "1.jpg\tIs there a dog?\tYes\tYes\n1.jpg\tIs there a cat?\tNo\tYes\n"
        "2.jpg\tIs there a car?\tYes\tyes, there is\n2.jpg\tIs there a bus?\tNo\tNo\n"
    )
    (tmp_path / "OCR.txt").write_text("3.jpg\tIs it 'A'?\tYes\tmaybe\n3.jpg\tIs it 'B'?\tNo\tNo\n")
    code, out, _ = run_cli("eval", "mme", "score", "--eval-tool", tmp_path, "--json")
    metrics = json.loads(out)
    assert code == 0
    assert metrics["existence/score"] == pytest.approx(100 * (3 / 4 + 1 / 2))
    assert metrics["OCR/score"] == pytest.approx(100 * (1 / 2 + 0))
    assert metrics["perception"] == pytest.approx(125 + 50)


def test_release_layout(tmp_path):
    (tmp_path / "existence").mkdir()
    (tmp_path / "existence" / "1.jpg").write_bytes(b"")
    (tmp_path / "existence" / "1.txt").write_text("Is there a dog?\tYes\nIs there a cat?\tNo\n")
    qa = tmp_path / "artwork" / "questions_answers_YN"
    qa.mkdir(parents=True)
    (tmp_path / "artwork" / "images").mkdir()
    (tmp_path / "artwork" / "images" / "9.jpg").write_bytes(b"")
    (qa / "9.txt").write_text("Is this by Monet?\tNo\n")
    items = Mme().load_items(tmp_path)
    assert [(i.image, i.meta["subtask"], i.meta["label"]) for i in items] == [
        ("artwork/images/9.jpg", "artwork", "no"),
        ("existence/1.jpg", "existence", "yes"),
        ("existence/1.jpg", "existence", "no"),
    ]


def test_bad_input(tmp_path, run_cli):
    (tmp_path / "existence.txt").write_text("1.jpg\tIs there a dog?\tMaybe\tYes\n")
    with pytest.raises(DataError, match=r"existence.txt:1: unknown ground truth 'Maybe'"):
        load_eval_tool(tmp_path)
    (tmp_path / "existence.txt").write_text("1.jpg\tIs there a dog?\tYes\n")
    with pytest.raises(DataError, match=r"existence.txt:1: expected 4 tab-separated fields"):
        load_eval_tool(tmp_path)
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question_id": "x/1.png", "image": "x/1.png", "text": f"Q{k}", "category": "color"}
            for k in (1, 2)
        ],
    )
    answers = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"question_id": "x/1.png", "prompt": "Q1", "text": "Yes"},
            {"question_id": "x/1.png", "prompt": "Q9", "text": "No"},
        ],
    )
    code, _, err = run_cli("eval", "mme", "score", "--questions", questions, "--answers", answers)
    assert code == 2 and f"{answers}:2: answer's prompt is none of the questions of image 'x/1.png'" in err
