"""Object HalBench on RLHF-V's real synonym list: hand-computed official behaviour (rule and judge paths), the
WordNet lemmas the official scorer sees, COCO ground truth, and `tether eval objhalbench run|score`."""

import json

import pytest
from eval_helpers import write_jsonl
from PIL import Image

from tether.eval.objhalbench import ObjectVocabulary, ObjHalBench, parse_object_list, wordnet_lemma

OBJECTS = ["person", "bench", "dog", "cat", "fire hydrant", "bus", "vase", "teddy bear"]


@pytest.fixture
def synonyms(data_dir):
    return data_dir / "objhalbench" / "synonyms_refine.txt"


@pytest.fixture
def vocabulary(synonyms):
    return ObjectVocabulary.from_files(synonyms)


def _gt(tmp_path, images: dict) -> str:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"objects": OBJECTS, "images": {k: [OBJECTS.index(o) for o in v]
                                                              for k, v in images.items()}}))  # fmt: skip
    return path


@pytest.mark.parametrize(
    "word, lemma",
    [
        ("buses", "bus"),  # plain suffix rule
        ("children", "child"),  # WordNet's exception list
        ("men", "men"),  # "men" is a WordNet noun as long as "man": the shorter-of-equals keeps it
        ("bikers", "bikers"),  # WordNet has no "biker": left as it is
        ("vases", "vas"),  # WordNet's shorter noun wins over "vase"
        ("glass", "glass"),  # not "glas", which only the list's "wine glas" pair spells
        ("wine", "wine"),
    ],
)
def test_wordnet_lemma_is_what_the_official_lemmatiser_gives(vocabulary, word, lemma):
    assert wordnet_lemma(word, vocabulary.nouns) == lemma


def test_rule_path_hand_computed(tmp_path, synonyms, run_cli):
    gt = _gt(tmp_path, {"1": ["person", "bench"], "2": ["dog"], "3": ["cat"]})
    answers = write_jsonl(tmp_path / "answers.jsonl", [
        {"question_id": 0, "image_id": 1, "prompt": "Describe.",
         "text": "Assistant: Two men sit on a bench near two buses. A biker rides past a vase, and the bikers wave."},
        {"question_id": 1, "image_id": 2, "prompt": "Describe.", "text": "A dog."},
        {"question_id": 2, "image_id": 3, "prompt": "Describe.", "text": "Nothing here to see."},
    ])  # fmt: skip
    code, out, _ = run_cli("eval", "objhalbench", "score", "--synonyms", synonyms, "--gt", gt,
                           "--answers", answers, "--json", "--out", tmp_path / "out", "--resamples", "50")  # fmt: skip
    metrics = json.loads(out)
    # mentions: bench, bus, biker -> person, vase ("men" and "bikers" are no list words after WordNet)
    assert code == 0
    assert metrics["object_hallucination"] == pytest.approx(2 / 5)  # bus, vase of bench, bus, person, vase, dog
    assert metrics["response_hallucination"] == pytest.approx(1 / 2)  # answer 3 names no object
    assert metrics["chair_s"] == pytest.approx(1 / 3)
    assert metrics["object_recall"] == pytest.approx(3 / 4)
    assert metrics["object_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert metrics["avg_words"] == pytest.approx((19 + 2 + 4) / 3)  # "Assistant:" stripped first
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["scoring"]["objects"] == "rule" and results["scoring"]["mapping"] is None


def test_judge_path_hand_computed(tmp_path, synonyms, run_cli):
    gt = _gt(tmp_path, {"1": ["person", "fire hydrant"], "2": ["dog"], "3": ["dog"], "4": ["cat"]})
    answers = write_jsonl(tmp_path / "answers.jsonl", [
        {"question_id": 0, "image_id": 1, "prompt": "Describe.",
         "text": "A man walks his dog past a fire hydrant holding a teddy bear."},
        {"question_id": 1, "image_id": 2, "prompt": "Describe.", "text": "A dog."},  # <= 3 words: not asked
        {"question_id": 2, "image_id": 3, "prompt": "Describe.", "text": "There is one dog here."},
        {"question_id": 3, "image_id": 4, "prompt": "Describe.", "text": "It is a cat on a mat."},
    ])  # fmt: skip
    replies = write_jsonl(tmp_path / "replies.jsonl", [
        {"question_id": 0, "text": '["man", "dog", "fire hydrant", "teddy bear", "man"]'},  # repeats count once
        {"question_id": 2, "text": 'The objects are:\n["dog"]'},  # the last line is read
        {"question_id": 3, "text": "a cat and a mat"},  # no list: unparsed, no objects
    ])  # fmt: skip
    code, out, _ = run_cli("eval", "objhalbench", "score", "--synonyms", synonyms, "--gt", gt, "--answers",
                           answers, "--objects", "judge", "--judge-output", replies, "--json")  # fmt: skip
    metrics = json.loads(out)
    assert code == 0
    # person, dog (hallucinated), fire hydrant, teddy bear (hallucinated); dog
    assert metrics["object_hallucination"] == pytest.approx(2 / 5)
    assert metrics["response_hallucination"] == pytest.approx(1 / 2)
    assert metrics["chair_s"] == pytest.approx(1 / 4)
    assert metrics["object_recall"] == pytest.approx(3 / 5)


def test_judge_phrases_two_word_objects_first_then_noun_runs(vocabulary):
    assert vocabulary.phrase_objects(["baby elephant", "toilet seat", "two buses", "dining table"]) == [
        "elephant", "toilet", "bus", "dining table",
    ]  # fmt: skip
    assert [c for _, c in vocabulary.object_mentions(["toilet", "seat", "chair"])] == ["toilet", "chair"]
    assert parse_object_list("[]") == [] and parse_object_list("{}") is None


def test_mapping_adds_phrases_and_is_recorded(data_dir, synonyms):
    plain = ObjectVocabulary.from_files(synonyms)
    mapped = ObjectVocabulary.from_files(synonyms, data_dir / "objhalbench" / "chair_mapping.mergeall.correct_0406.json")
    caption = "A pedestrian passes a taxi cab."
    assert [c for _, c in plain.caption_mentions(caption)] == ["person", "car", "car"]  # taxi, cab
    assert [c for _, c in mapped.caption_mentions(caption)] == ["person", "car"]  # "taxi cab" merged: one car


def test_coco_ground_truth_is_segments_plus_caption_objects(tmp_path, synonyms):
    coco = tmp_path / "coco"
    coco.mkdir()
    categories = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    for split, annotations, captions in (
        ("val", [{"image_id": 7, "category_id": 18}], [{"image_id": 7, "caption": "Two cats by a dog."}]),
        ("train", [{"image_id": 8, "category_id": 1}], [{"image_id": 9, "caption": "A bus."}]),
    ):
        (coco / f"instances_{split}2014.json").write_text(
            json.dumps({"categories": categories, "annotations": annotations})
        )
        (coco / f"captions_{split}2014.json").write_text(json.dumps({"annotations": captions}))
    questions = write_jsonl(tmp_path / "q.jsonl", [{"image_id": 7, "question": "Describe it."}])
    items = ObjHalBench().load_items(questions, synonyms=synonyms, coco=coco)
    assert items[0].meta["gt_objects"] == ["cat", "dog"] and items[0].image == "COCO_val2014_000000000007.jpg"


class _Captioner:
    """A stand-in model that names a dog whatever it is shown (the runner only calls generate)."""

    path = "captioner"

    def __init__(self):
        self.calls = 0

    def generate(self, images, prompts, settings):
        self.calls += 1
        return ["A dog sits on a bench." for _ in prompts]


def test_run_resumes_limits_and_refuses_other_inputs(tmp_path, synonyms, run_cli, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    for image_id in (1, 2, 3):
        Image.new("RGB", (16, 16)).save(images / f"COCO_val2014_{image_id:012d}.jpg")
    questions = write_jsonl(tmp_path / "q.jsonl", [{"image_id": i, "question": "Describe."} for i in (1, 2, 3)])
    gt = _gt(tmp_path, {"1": ["dog"], "2": ["dog", "bench"], "3": ["cat"]})
    model = tmp_path / "model"
    model.mkdir()
    captioner = _Captioner()
    monkeypatch.setattr("tether.eval.runner.generator", lambda *args: captioner)
    argv = ["eval", "objhalbench", "run", "--model", model, "--questions", questions, "--gt", gt,
            "--synonyms", synonyms, "--images", images, "--out", tmp_path / "run", "--no-progress"]  # fmt: skip
    code, _, _ = run_cli(*argv, "--limit", "2")
    assert code == 0 and captioner.calls == 1
    samples = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2
    code, _, err = run_cli(*argv)  # another subset of items: refused, naming the difference
    assert code == 2 and "items" in err
    code, _, _ = run_cli(*argv, "--limit", "2")  # the same inputs: resumed, nothing asked again
    assert code == 0 and captioner.calls == 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["benchmark"] == "objhalbench" and results["metrics"]["n"] == 2


def test_judge_is_asked_with_the_official_prompt_except_for_short_answers(tmp_path, synonyms):
    class Client:
        model, messages = "stub", []

        def complete(self, messages):
            self.messages.append(messages)
            return '["dog", "frisbee"]'

    class Judge:
        client = Client()

    questions = write_jsonl(tmp_path / "q.jsonl", [{"image_id": 1, "question": "What is here?"},
                                                   {"image_id": 2, "question": "And here?"}])  # fmt: skip
    bench = ObjHalBench()
    items = bench.load_items(questions, synonyms=synonyms, gt=_gt(tmp_path, {"1": ["dog"], "2": ["cat"]}),
                             objects="judge")  # fmt: skip
    score = bench.score(items, {"0": "A dog catches a frisbee mid-air.", "1": "A cat."}, judge=Judge())
    [messages] = Judge.client.messages  # "A cat." (3 words or fewer) is not sent
    assert messages[0]["role"] == "system"
    assert "<image> What is here?\n\n[End of Question]" in messages[0]["content"]
    assert "A dog catches a frisbee mid-air.\n\n[End of Examiner's Answer]" in messages[0]["content"]
    assert score.per_sample[0]["hallucinated"] == ["frisbee"] and score.metrics["object_hallucination"] == 0.5
    with pytest.raises(Exception, match="needs an LLM judge"):
        bench.score(items, {"0": "A dog.", "1": "A cat."}, judge=None)
