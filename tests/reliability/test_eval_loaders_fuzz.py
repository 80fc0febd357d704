"""Property tests of the benchmark loaders and answer-file parsers on damaged files.

Every loader's items must be usable by the runner (string id, image and prompt) or the load must fail
with a TetherError naming the file; answer files likewise, with skip-invalid counts adding up.
"""

import json
import tempfile
from pathlib import Path

import pytest
from fuzz_strategies import check_clean_failure, damaged_file, damaged_record
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog
from tether.eval.benchmark import EvalItem, answers_by_id, read_answer_lines
from tether.eval.chair import read_captions
from tether.eval.mme import align_mme_answers
from tether.eval.mmhal import read_judge_replies, read_mmhal_responses
from tether.eval.pope import align_answers_by_line_order
from tether.eval.registry import get_benchmark

FUZZ = settings(max_examples=50, deadline=None)

POPE = [
    {
        "question_id": 1,
        "image": "COCO_val2014_000000310196.jpg",
        "text": "Is there a snowboard?",
        "label": "yes",
    },
    {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car?", "label": "no"},
]
POPE_COMBINED = [{"question_id": 1, "image": "a.jpg", "text": "Is there a car?", "category": "random"}]
MME = [
    {
        "question_id": "code/0020.png",
        "image": "code/0020.png",
        "text": "Is python code shown?",
        "category": "code",
    },
    {
        "question_id": "code/0020.png",
        "image": "code/0020.png",
        "text": "Is C code shown?",
        "category": "code",
    },
]
MMHAL = [
    {
        "question_type": "attribute",
        "image_id": "df62a56fdc1bb12b",
        "image_src": "https://c4.staticflickr.com/8/7211/7206072054_c53d53b97d_o.jpg",
        "image_content": ["Fire hydrant"],
        "question": "What color is the fire hydrant cap?",
        "gt_answer": "Yellow.",
        "model_answer": "Red.",
    }
]
SHR = [{"image_id": 7, "image": "7.jpg", "facts": ["a red car"], "prompt": "Describe this image."}]
AMBER_QUERIES = [
    {"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."},
    {"id": 1005, "image": "AMBER_1.jpg", "query": "Is the sky sunny in this image?"},
]
AMBER_TRUTH = [
    {"id": 1, "type": "generative", "truth": ["sky", "forest"], "hallu": ["cloud"]},
    {"id": 1005, "type": "discriminative-attribute-state", "truth": "yes"},
]
ANSWERS = [
    {"question_id": 1, "prompt": "Is there a snowboard?", "text": "No"},
    {"question_id": 2, "prompt": "Is there a car?", "text": "Yes", "answer_id": "x"},
]


def check_items(items, *paths):
    if items is None:
        return
    for item in items:
        assert isinstance(item, EvalItem)
        assert all(isinstance(x, str) for x in (item.id, item.image, item.prompt)), item
        assert item.kind in ("yesno", "free")
    assert len({item.id for item in items}) == len(items)  # ids are unique: answers are keyed by them


def write(folder, name, data) -> Path:
    path = Path(folder) / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


@FUZZ
@given(damaged_file(POPE), damaged_file(POPE_COMBINED), damaged_file(POPE))
def test_pope(single, combined, labels):
    with tempfile.TemporaryDirectory() as folder:
        questions = write(folder, "coco_pope_random.json", single[0])
        items = check_clean_failure(lambda: get_benchmark("pope").load_items(questions), questions)
        check_items(items)
        both = write(folder, "llava_pope_test.json", combined[0])
        label_file = write(folder, "labels_random.json", labels[0])
        items = check_clean_failure(
            lambda: get_benchmark("pope").load_items(both, labels={"random": str(label_file)}),
            both,
            label_file,
        )
        check_items(items)


@FUZZ
@given(damaged_file(MME))
def test_mme(file):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "llava_mme.json", file[0])
        check_items(check_clean_failure(lambda: get_benchmark("mme").load_items(path), path))


@FUZZ
@given(
    st.lists(st.tuples(st.sampled_from(["a.png", "", "b.png"]), st.text(max_size=10)), max_size=4),
    st.binary(max_size=40),
)
def test_mme_eval_tool_folder(rows, garbage):
    with tempfile.TemporaryDirectory() as folder:
        text = "".join(f"{image}\t{question}\tYes\tNo\n" for image, question in rows)
        (Path(folder) / "color.txt").write_bytes(text.encode() + garbage)
        check_items(check_clean_failure(lambda: get_benchmark("mme").load_items(folder), Path(folder)))


@FUZZ
@given(damaged_file(MMHAL))
def test_mmhal(file):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "mmhal.json", file[0])
        check_items(check_clean_failure(lambda: get_benchmark("mmhal").load_items(path), path))
        answers = check_clean_failure(lambda: read_mmhal_responses(path), path)
        assert answers is None or all(isinstance(a, str) for a in answers.values())
        check_clean_failure(lambda: read_judge_replies(path), path)


@FUZZ
@given(damaged_file(SHR))
def test_shr(file):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "shr.json", file[0])
        check_items(check_clean_failure(lambda: get_benchmark("shr").load_items(path), path))


@FUZZ
@given(damaged_file(AMBER_QUERIES), damaged_file(AMBER_TRUTH))
def test_amber(queries, truth):
    with tempfile.TemporaryDirectory() as folder:
        data = write(folder, "query.json", queries[0])
        annotations = write(folder, "annotations.json", truth[0])
        write(folder, "relation.json", {"sky": ["cloud"]})
        (Path(folder) / "safe_words.txt").write_text("sky\n")
        benchmark = get_benchmark("amber")
        items = check_clean_failure(
            lambda: benchmark.load_items(data, annotations=annotations), data, annotations
        )
        check_items(items)


@FUZZ
@given(damaged_record({"objects": ["cat", "dog"], "images": {"1": [0], "2": [0, 1]}}), st.booleans())
def test_chair_ground_truth(ground_truth, restrict):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "gt.json", ground_truth)
        synonyms = Path(folder) / "synonyms.txt"
        synonyms.write_text("cat, kitten\ndog, puppy\n")
        ids = ["1"] if restrict else None
        chair = get_benchmark("chair")
        items = check_clean_failure(lambda: chair.load_items(path, synonyms=synonyms, image_ids=ids), path)
        check_items(items)


@FUZZ
@given(damaged_record({"1": [0], "2": [0, 1]}), damaged_record({"objects": ["cat"]}))
def test_chair_ground_truth_inner_fields(images, top):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "gt.json", {**top, "images": images})
        synonyms = Path(folder) / "synonyms.txt"
        synonyms.write_text("cat, kitten\ndog, puppy\n")
        items = check_clean_failure(lambda: get_benchmark("chair").load_items(path, synonyms=synonyms), path)
        check_items(items)


@FUZZ
@given(damaged_file(ANSWERS + [{"image_id": 3, "caption": "A cat."}]))
def test_answer_files(file):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "answers.json", file[0])
        lines = check_clean_failure(lambda: read_answer_lines(path), path)
        if lines is not None:
            assert all(isinstance(a.text, str) and a.text.strip() and isinstance(a.id, str) for a in lines)
            check_clean_failure(lambda: answers_by_id(lines, path), path)
        skips = SkipLog()
        kept = check_clean_failure(lambda: read_answer_lines(path, skip_invalid=True, skips=skips), path)
        if kept is not None and file[1] == "jsonl" and lines is not None:
            assert skips.skipped == 0 and len(kept) == len(lines)
        captions = check_clean_failure(lambda: read_captions(path), path)
        assert captions is None or all(isinstance(c, str) for c in captions.values())


@FUZZ
@given(damaged_file(ANSWERS))
def test_answers_aligned_to_questions(file):
    with tempfile.TemporaryDirectory() as folder:
        questions = write(
            folder, "coco_pope_random.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in POPE)
        )
        items = get_benchmark("pope").load_items(questions)
        path = write(folder, "answers.json", file[0])
        lines = check_clean_failure(lambda: read_answer_lines(path, skip_invalid=True, skips=SkipLog()), path)
        if lines is not None:
            check_clean_failure(lambda: align_answers_by_line_order(items, lines, path), path)
            mme_items = [
                EvalItem(id=f"{i}#1", image="a.png", prompt=p, kind="yesno") for i, p in [("1", "Q")]
            ]
            check_clean_failure(lambda: align_mme_answers(mme_items, lines, path), path)


def test_specific_bad_inputs(tmp_path):
    """Unknown labels, duplicated ids, empty answers and mismatched counts name the file and line."""
    pope = get_benchmark("pope")
    bad_label = write(tmp_path, "coco_pope_random.json", [{**POPE[0], "label": "maybe"}])
    with pytest.raises(DataError, match=f"{bad_label}:1: unknown label 'maybe'"):
        pope.load_items(bad_label)
    duplicated = write(tmp_path, "coco_pope_popular.json", [POPE[0], POPE[0]])
    with pytest.raises(DataError, match=f"{duplicated}:2: duplicate id '1'"):
        pope.load_items(duplicated)
    empty = write(tmp_path, "answers.json", [{"question_id": 1, "text": "  "}])
    with pytest.raises(DataError, match=f"{empty}:1: empty answer"):
        read_answer_lines(empty)
    questions = write(tmp_path, "coco_pope_adversarial.json", POPE)
    one_answer = read_answer_lines(write(tmp_path, "one.json", ANSWERS[:1]))
    with pytest.raises(DataError, match="1 answers but 2 questions of category 'adversarial'"):
        align_answers_by_line_order(pope.load_items(questions), one_answer, tmp_path / "one.json")
    wrong_type = write(tmp_path, "coco_pope_random_x.json", [{**POPE[0], "text": 5}])
    with pytest.raises(TetherError, match=str(wrong_type)):
        pope.load_items(wrong_type)
