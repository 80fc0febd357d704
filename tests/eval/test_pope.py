import json

import pytest
from eval_helpers import write_jsonl

from tether.core.errors import DataError, TetherError
from tether.eval.benchmark import read_answer_lines
from tether.eval.pope import Pope, align_answers_by_line_order, parse_pope_answer, pope_metrics


@pytest.mark.parametrize(
    "reply, parsed",
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("no", "no"),
        ("Yes, there is a dog.", "yes"),
        ("There is no dog in the image.", "no"),
        ("I am not sure", "no"),
        ("Yes. There is no cat though.", "yes"),  # only the first sentence counts
        ("No, there is not.", "no"),
        ("No,there is", "yes"),  # commas are removed, not replaced: "Nothere" is not "No"
        ("NO", "yes"),  # case-sensitive: only "No", "no", "not"
        ("Nope", "yes"),
        ("No\nThere is none", "yes"),  # words are split on single spaces only: "No\nThere" is one word
        ("cannot", "yes"),
    ],
)
def test_parse_follows_official_rule(reply, parsed):
    assert parse_pope_answer(reply) == parsed


def test_metrics_hand_computed():
    records = [
        {"parsed": "yes", "label": "yes"},
        {"parsed": "yes", "label": "no"},
        {"parsed": "no", "label": "no"},
        {"parsed": "no", "label": "yes"},
        {"parsed": "yes", "label": "yes"},
    ]
    m = pope_metrics(records)
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (2, 1, 1, 1, 5)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)


def _llava_args(data_dir, version="_v2023-08"):
    pope = data_dir / "pope"
    args = ["--questions", pope / "llava-v1.5-13b" / "llava_pope_test.jsonl"]
    for split in ("random", "popular", "adversarial"):
        args += ["--labels", f"{split}={pope / f'coco_pope_{split}{version}.jsonl'}"]
    return args + ["--answers", pope / "llava-v1.5-13b" / "llava-v1.5-13b.jsonl"]


def test_llava_13b_reproduces_published_f1(data_dir, run_cli):
    code, out, _ = run_cli("eval", "pope", "score", *_llava_args(data_dir), "--json")
    assert code == 0
    metrics = json.loads(out)
    assert round(metrics["random/f1"] * 100, 2) == 87.14
    assert round(metrics["popular/f1"] * 100, 2) == 86.25
    assert round(metrics["adversarial/f1"] * 100, 2) == 84.46
    assert round(metrics["f1_mean"] * 100, 2) == 85.95
    assert metrics["random/n"] == 2910


def test_single_split_of_combined_file_has_plain_keys(data_dir, run_cli):
    code, out, _ = run_cli(
        "eval", "pope", "score", *_llava_args(data_dir), "--category", "adversarial", "--json"
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["n"] == 3000 and round(metrics["f1"] * 100, 2) == 84.46
    assert metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"] == 3000
    assert {"accuracy", "precision", "recall", "f1", "yes_ratio"} <= set(metrics)


def test_current_files_do_not_fit_llava_questions(data_dir):
    pope = data_dir / "pope"
    questions = pope / "llava-v1.5-13b" / "llava_pope_test.jsonl"
    with pytest.raises(DataError, match=r"3000 labelled questions but 2910 .* \(another POPE version\?\)"):
        Pope().load_items(questions, labels={"random": pope / "coco_pope_random.jsonl"}, category="random")
    # Same count (3000), but the current file fixed typos ("imange"): the question check fails loudly.
    with pytest.raises(DataError, match=r"coco_pope_adversarial.jsonl:11: question differs from line 11"):
        Pope().load_items(
            questions, labels={"adversarial": pope / "coco_pope_adversarial.jsonl"}, category="adversarial"
        )


def test_score_pope_own_file_with_always_yes(data_dir, tmp_path, run_cli):
    questions = data_dir / "pope" / "coco_pope_random.jsonl"
    records = [json.loads(line) for line in questions.read_text().splitlines()]
    answers = write_jsonl(
        tmp_path / "a.jsonl", [{"question_id": r["question_id"], "answer": "Yes"} for r in records]
    )
    code, out, _ = run_cli("eval", "pope", "score", "--questions", questions, "--answers", answers, "--json")
    metrics = json.loads(out)
    positives = sum(r["label"] == "yes" for r in records)
    assert code == 0
    assert metrics["recall"] == 1.0 and metrics["yes_ratio"] == 1.0
    assert metrics["precision"] == pytest.approx(positives / len(records))


def test_seem_json_list_file_loads(data_dir):
    items = Pope().load_items(data_dir / "pope" / "seem" / "gqa_pope_seem_random.json")
    assert items[0].image == "2405722.jpg" and items[0].meta["label"] == "yes"
    assert {item.meta["category"] for item in items} == {"random"}


@pytest.fixture
def small(tmp_path):
    questions = write_jsonl(
        tmp_path / "coco_pope_random.jsonl",
        [
            {"question_id": 1, "image": "a.jpg", "text": "Is there a dog?", "label": "yes"},
            {"question_id": 2, "image": "a.jpg", "text": "Is there a cat?", "label": "no"},
            {"question_id": 3, "image": "b.jpg", "text": "Is there a car?", "label": "no"},
        ],
    )
    return tmp_path, questions


def test_order_matching_is_official_and_id_matching_is_optional(small, run_cli):
    tmp_path, questions = small
    # Answers written in a different order than the questions.
    answers = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"question_id": 3, "text": "No"},
            {"question_id": 1, "text": "Yes"},
            {"question_id": 2, "text": "No"},
        ],
    )
    _, out, _ = run_cli("eval", "pope", "score", "--questions", questions, "--answers", answers)
    assert "answers_with_other_question_id: 3" in out
    _, by_order, _ = run_cli(
        "eval", "pope", "score", "--questions", questions, "--answers", answers, "--json"
    )
    _, by_id, _ = run_cli(
        "eval", "pope", "score", "--questions", questions, "--answers", answers, "--json", "--match", "id"
    )
    assert json.loads(by_order)["accuracy"] == pytest.approx(1 / 3)  # No/yes, Yes/no, No/no
    assert json.loads(by_id)["accuracy"] == 1.0


@pytest.mark.parametrize(
    "answers, message",
    [
        ([{"question_id": 1, "text": "Yes"}, {"question_id": 2, "text": "No"}], "2 answers but 3 questions"),
        (
            [
                {"question_id": 1, "text": "Yes"},
                {"question_id": 2, "text": ""},
                {"question_id": 3, "text": "No"},
            ],
            ":2: empty answer",
        ),
        (
            [{"question_id": 1, "text": "Yes"}, {"question_id": 2}, {"question_id": 3, "text": "No"}],
            ":2: missing an answer field",
        ),
        ([{"text": "Yes"}], ":1: missing an id field"),
    ],
)
def test_bad_answers_name_file_and_line(small, run_cli, answers, message):
    tmp_path, questions = small
    path = write_jsonl(tmp_path / "a.jsonl", answers)
    code, _, err = run_cli("eval", "pope", "score", "--questions", questions, "--answers", path)
    assert code == 2 and message in err and str(path) in err


def test_duplicate_answer_ids_with_id_matching(small, run_cli):
    tmp_path, questions = small
    answers = [{"question_id": q, "text": "No"} for q in (1, 2, 2)]
    path = write_jsonl(tmp_path / "a.jsonl", answers)
    code, _, err = run_cli(
        "eval", "pope", "score", "--questions", questions, "--answers", path, "--match", "id"
    )
    assert code == 2 and f"{path}:3: duplicate answer for id '2'" in err


def test_skip_invalid_skips_and_counts(small, run_cli):
    tmp_path, questions = small
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": 1, "text": "Yes"}\nnot json\n{"question_id": 2, "text": ""}\n')
    code, out, _ = run_cli(
        "eval",
        "pope",
        "score",
        "--questions",
        questions,
        "--answers",
        path,
        "--match",
        "id",
        "--skip-invalid",
        "--json",
    )
    # Skipping leaves questions without answers: still an error, but about the answers now missing.
    assert code == 2
    path.write_text(
        '{"question_id": 1, "text": "Yes"}\nnot json\n{"question_id": 2, "text": "No"}\n{"question_id": 3, "text": "No"}\n'
    )
    code, out, _ = run_cli(
        "eval", "pope", "score", "--questions", questions, "--answers", path, "--skip-invalid", "--json"
    )
    assert code == 0 and json.loads(out)["skipped_lines"] == 1 and json.loads(out)["accuracy"] == 1.0


def test_bad_questions(tmp_path):
    bad_label = write_jsonl(
        tmp_path / "q.jsonl", [{"question_id": 1, "image": "a", "text": "?", "label": "maybe"}]
    )
    with pytest.raises(DataError, match=r"q.jsonl:1: unknown label 'maybe'"):
        Pope().load_items(bad_label)
    duplicate = write_jsonl(
        tmp_path / "d.jsonl", [{"question_id": 1, "image": "a", "text": "?", "label": "no"}] * 2
    )
    with pytest.raises(DataError, match=r"d.jsonl:2: duplicate id '1'"):
        Pope().load_items(duplicate)
    missing = write_jsonl(tmp_path / "m.jsonl", [{"question_id": 1, "text": "?", "label": "no"}])
    with pytest.raises(DataError, match=r"m.jsonl:1: missing field 'image'"):
        Pope().load_items(missing)


def test_score_requires_every_answer(small):
    _, questions = small
    items = Pope().load_items(questions)
    with pytest.raises(TetherError, match="1 of 3 items have no answer"):
        Pope().score(items, {"1": "Yes", "2": "No"})
    lines = read_answer_lines(
        write_jsonl(questions.parent / "a.jsonl", [{"question_id": 9, "text": "No"}] * 3)
    )
    answers, mismatched = align_answers_by_line_order(items, lines, "a.jsonl")
    assert mismatched == 3 and set(answers) == {"1", "2", "3"}
