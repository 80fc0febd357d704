"""MMHal-Bench and SHR: official reply parsing, the published judge file, LLMJudge prompts."""

import json

import pytest
from eval_helpers import write_jsonl

from tether.core.errors import TetherError
from tether.core.text import split_sentences
from tether.eval.judge_protocol import MMHAL_TEMPLATE, LLMJudge
from tether.eval.mmhal import MmhalBench, parse_mmhal_rating, score_replies
from tether.eval.shr import Shr, numbered_sentences, parse_shr_judgement, score_judgements


class FakeClient:
    """Records the messages it is sent and answers from a fixed function."""

    model = "fake-judge-1"

    def __init__(self, reply):
        self.reply = reply
        self.sent = []

    def settings(self):
        return {"temperature": 0.0, "max_tokens": 1024}

    def complete(self, messages):
        self.sent.append(messages)
        return self.reply(messages[0]["content"])


@pytest.mark.parametrize(
    "reply, rating",
    [
        ("Good answer.\n- Rating: 5, very informative, no hallucination", 5),
        ("RATING: 2", 2),
        ("rating: 3 ... no wait, rating: 4", 0),  # several ratings -> 0
        ("I would give it a 6.", 0),  # none -> 0
        ("Rating:4", 0),  # the space is part of the official pattern
        ("Rating: 3\nRating: 3", 3),  # the same rating twice is still exactly one rating value
    ],
)
def test_mmhal_rating_parse(reply, rating):
    assert parse_mmhal_rating(reply) == rating


def test_mmhal_judge_file_reproduces_published(data_dir, run_cli):
    mmhal = data_dir / "mmhal"
    code, out, _ = run_cli(
        "eval",
        "mmhal",
        "score",
        "--template",
        mmhal / "mmhal-bench_answer_template.json",
        "--judge-output",
        mmhal / "third_party" / "blip2_mmhal_eval.json",
        "--json",
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["n"] == 96
    assert round(metrics["average_score"], 2) == 1.31
    assert round(metrics["hallucination_rate"], 2) == 0.65
    per_type = [
        round(metrics[f"{t}/average_score"], 2)
        for t in (
            "attribute",
            "adversarial",
            "comparison",
            "counting",
            "relation",
            "environment",
            "holistic",
            "other",
        )
    ]
    assert per_type == [0.83, 0.17, 1.67, 1.08, 1.58, 2.08, 2.33, 0.75]


def test_mmhal_template_types_follow_position_mod_8(data_dir):
    items = MmhalBench().load_items(data_dir / "mmhal" / "mmhal-bench_answer_template.json")
    assert len(items) == 96
    assert [i.meta["question_type"] for i in items[:8]] == [i.meta["question_type"] for i in items[8:16]]
    assert items[0].image == "7206072054_c53d53b97d_o.jpg"


def test_mmhal_with_llm_judge(data_dir):
    items = MmhalBench().load_items(data_dir / "mmhal" / "mmhal-bench_answer_template.json")[:8]
    client = FakeClient(
        lambda prompt: "Fine.\n- Rating: 4, somewhat informative" if "cap" in prompt else "Rating: 1"
    )
    judge = LLMJudge(client)
    score = MmhalBench().score(items, {i.id: f"answer {i.id}" for i in items}, judge=judge)
    prompt = client.sent[0][0]["content"]
    assert prompt == MMHAL_TEMPLATE.format(
        "Fire hydrant", items[0].meta["question"], items[0].meta["gt_answer"], "answer 0"
    )
    assert prompt.endswith("### LMM Response to Evaluate\nanswer 0\n")
    assert judge.name == "fake-judge-1" and judge.settings()["temperature"] == 0.0
    ratings = [r["rating"] for r in score.per_sample]
    assert ratings[0] == 4 and score.metrics["average_score"] == pytest.approx(sum(ratings) / 8)
    with pytest.raises(TetherError, match="needs a judge"):
        MmhalBench().score(items, {i.id: "x" for i in items})
    with pytest.raises(TetherError, match="7 judge replies for 8 questions"):
        score_replies(items, ["Rating: 1"] * 7)


def test_shr_segmentation_and_parse():
    assert split_sentences("A dog runs. A dog runs. The sky is blue. A dog. Grass") == [
        "A dog runs",
        "The sky is blue",
        "Grass",
    ]
    assert numbered_sentences("A cat. A hat.") == "1. A cat\n2. A hat\n"
    reply = "Judgement:\n1. Correct: ok\n\n2. hallucination: no sky\n3. Cannot judge: mood"
    assert parse_shr_judgement(reply, 3) == ["correct", "hallucination", "cannot judge"]
    assert parse_shr_judgement(reply, 2) is None  # misaligned
    assert parse_shr_judgement("1. correct: ok", 1) is None  # no "Judgement:" line


def _shr_items(tmp_path):
    path = write_jsonl(
        tmp_path / "shr.jsonl",
        [
            {"image_id": "a", "image": "a.png", "facts": ["[0.1, 0.1, 0.5, 0.5]: a red ball"]},
            {"image_id": "b", "image": "b.png", "facts": ["a blue cube"], "factual": ["two objects"]},
            {"image_id": "c", "image": "c.png", "facts": ["a green cone"]},
        ],
    )
    return Shr().load_items(path)


def test_shr_score_keeps_misaligned_images_in_averages(tmp_path):
    items = _shr_items(tmp_path)
    answers = {"a": "A red ball. A cat sits.", "b": "A blue cube. It is calm. A tree", "c": "A cone. A dog."}
    replies = {
        "a": "Judgement:\n1. correct: yes\n2. hallucination: no cat",
        "b": "Judgement:\n1. correct: ok\n2. cannot judge: mood\n3. hallucination: no tree",
        "c": "Judgement:\n1. correct: ok",  # 1 label for 2 sentences: unlabelled, image kept (HA-DPO)
    }
    score = score_judgements(items, answers, replies)
    assert score.notes["misaligned_images"] == 1
    assert score.metrics["shr"] == pytest.approx(2 / 5)
    assert score.metrics["n_images"] == 3 and score.metrics["hal_sents_per_image"] == pytest.approx(2 / 3)
    assert score.metrics["sents_per_image"] == pytest.approx(7 / 3)
    corrected = score_judgements(items, answers, replies, corrected=True)
    assert corrected.metrics["shr"] == pytest.approx(2 / 5)
    assert corrected.metrics["n_images"] == 2 and corrected.metrics["hal_sents_per_image"] == 1.0


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"prompt": None}, r"mistyped field 'prompt' \(expected str\)"),
        ({"factual": "yes"}, r"mistyped field 'factual' \(expected list\)"),
        ({"facts": ["a red car", 3]}, "field 'facts' must list texts"),
    ],
)
def test_shr_items_with_mistyped_optional_fields_name_the_line(tmp_path, extra, message):
    from tether.core.errors import DataError

    good = {"image_id": 1, "image": "1.jpg", "facts": ["a red car"]}
    path = tmp_path / "shr.jsonl"
    write_jsonl(path, [good, {**good, "image_id": 2, **extra}])
    with pytest.raises(DataError, match=message) as error:
        Shr().load_items(path)
    assert f"{path}:2" in str(error.value)
    write_jsonl(path, [good])  # without the optional fields: SHR's prompt
    assert Shr().load_items(path)[0].prompt == "Describe this image in detail."


def test_shr_with_llm_judge(tmp_path):
    items = _shr_items(tmp_path)
    client = FakeClient(lambda prompt: "Judgement:\n1. correct: fine")
    score = Shr().score(items, {"a": "A red ball", "b": "A cube.", "c": "Cone"}, judge=LLMJudge(client))
    prompt = client.sent[1][0]["content"]
    assert "Here are the region descriptions of the image:\na blue cube\n" in prompt
    assert "Factual Information:\ntwo objects\n" in prompt
    assert prompt.endswith("(hallucination, correct, or cannot judge): \n1. A cube\n\n")
    assert score.metrics["shr"] == 0.0 and score.metrics["n_sentences"] == 3


def test_shr_cli_and_mmhal_judge_recorded(tmp_path, run_cli, data_dir):
    _shr_items(tmp_path)
    answers = write_jsonl(tmp_path / "a.jsonl", [{"image_id": k, "text": "A thing. Another."} for k in "abc"])
    replies = write_jsonl(
        tmp_path / "j.jsonl",
        [{"image_id": k, "text": "Judgement:\n1. correct: x\n2. hallucination: y"} for k in "abc"],
    )
    code, out, _ = run_cli(
        "eval",
        "shr",
        "score",
        "--items",
        tmp_path / "shr.jsonl",
        "--answers",
        answers,
        "--judge-output",
        replies,
        "--json",
    )
    assert code == 0 and json.loads(out)["shr"] == 0.5
    mmhal = data_dir / "mmhal"
    code, _, _ = run_cli(
        "eval",
        "mmhal",
        "score",
        "--template",
        mmhal / "mmhal-bench_answer_template.json",
        "--judge-output",
        mmhal / "third_party" / "blip2_mmhal_eval.json",
        "--responses",
        mmhal / "third_party" / "blip2_2.7b.json",
        "--out",
        tmp_path / "run",
        "--resamples",
        "50",
    )
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["judge"]["name"] == "gpt-4o-2024-08-06"
    assert results["notes"]["replies_without_exactly_one_rating"] == 1
    first = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert first["rating"] == 0 and first["answer"]
