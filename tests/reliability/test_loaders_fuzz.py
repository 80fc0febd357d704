"""Property tests of the training-data loaders (SFT, preference pairs, Fact-RLHF) on damaged files."""

import json
import tempfile
from pathlib import Path

import pytest
from fuzz_strategies import check_clean_failure, damaged_file
from hypothesis import given, settings

from tether.core.errors import DataError
from tether.core.io import SkipLog
from tether.data import preference, rlhf
from tether.data.sft import SFTRecord, load_sft_records

FUZZ = settings(max_examples=50, deadline=None)

SFT_TEMPLATES = [
    {"image": "a.jpg", "prompt": "What is it?", "response": "A cat."},
    {"image": "a.jpg", "question": "Is there a dog?", "answer": "no"},
    {
        "image": "b.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "A dog."},
        ],
    },
    {"text": "plain text"},
]
PREFERENCE_TEMPLATES = {
    "tether": [{"prompt": "Describe.", "chosen": "A cat.", "rejected": "A dog.", "images": ["a.jpg"]}],
    "hadpo_desc": [{"image_id": 12, "chosen": ["A cat."], "rejected": ["A dog.", "A cow."]}],
    "hadpo_pope": [
        {"image_id": 3, "question": "Is there a cat?", "chosen": "Yes.", "reject": "No.", "correct": False}
    ],
    "llava_rlhf": [
        {
            "image": "a.jpg",
            "conversations": [{"from": "human", "value": "<image>\nDescribe."}],
            "output_1": {"value": "A cat."},
            "output_2": {"value": "A dog."},
            "preference": 2,
        }
    ],
    "rlaif_v": [{"question": "Describe.", "chosen": "A cat.", "rejected": "A dog.", "image_path": "a.jpg"}],
}
RLHF_PAIR_TEMPLATES = [
    {"image": "a.jpg", "prompt": "Describe.", "chosen": "A cat.", "rejected": "A dog.", "facts": ["a cat"]},
    {
        "image": "a.jpg",
        "conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": ""}],
        "output_1": {"value": "A cat."},
        "output_2": {"value": "A dog."},
        "preference": 1,
    },
]
RLHF_PROMPT_TEMPLATES = [
    {"image": "a.jpg", "prompt": "Is there a cat?", "answer": "yes", "length_bonus": 0.5, "options": ["A"]},
    {"image": "a.jpg", "conversations": [{"from": "human", "value": "Is it red?"}], "caption_type": 7},
]


def load_both_ways(folder, data, load, **kwargs):
    """Strict load (clean failure or success), then skip-invalid load (must always succeed)."""
    path = Path(folder) / "data.json"
    path.write_bytes(data)
    strict = check_clean_failure(lambda: load(path, **kwargs), path)
    skips = SkipLog()
    lenient = check_clean_failure(lambda: load(path, skip_invalid=True, skips=skips, **kwargs), path)
    return path, strict, lenient, skips


@FUZZ
@given(damaged_file(SFT_TEMPLATES))
def test_sft_records(file):
    with tempfile.TemporaryDirectory() as folder:
        _, strict, lenient, _ = load_both_ways(folder, file[0], load_sft_records)
        for records in (strict, lenient):
            for record in records or []:
                assert isinstance(record, SFTRecord) and isinstance(record.response, str) and record.response
                assert record.image is None or isinstance(record.image, str)
                assert record.prompt is None or isinstance(record.prompt, str)


def check_preference(format, data):
    with tempfile.TemporaryDirectory() as folder:
        path, strict, lenient, skips = load_both_ways(
            folder, data, preference.load_preference_records, format=format
        )
        for records in (strict, lenient):
            for record in records or []:
                assert all(isinstance(x, str) and x for x in (record.prompt, record.chosen, record.rejected))
                assert len(record.images) == 1 and isinstance(record.image, str) and record.image
        if format in ("tether", "rlaif_v", "llava_rlhf", "hadpo_pope") and lenient is not None:
            # one pair per record: every record is kept or skipped (data rows only; a torn file may lose some)
            lines = {record.source.get("line") for record in lenient}
            assert len(lines) == len(lenient)


@FUZZ
@given(damaged_file(PREFERENCE_TEMPLATES["tether"]))
def test_preference_tether(file):
    check_preference("auto", file[0])


@FUZZ
@given(damaged_file(PREFERENCE_TEMPLATES["hadpo_desc"] + PREFERENCE_TEMPLATES["hadpo_pope"]))
def test_preference_hadpo(file):
    check_preference("auto", file[0])


@FUZZ
@given(damaged_file(PREFERENCE_TEMPLATES["llava_rlhf"] + PREFERENCE_TEMPLATES["rlaif_v"]))
def test_preference_llava_rlhf_and_rlaif_v(file):
    check_preference("auto", file[0])


@FUZZ
@given(damaged_file([t for ts in PREFERENCE_TEMPLATES.values() for t in ts]))
def test_preference_every_named_format(file):
    for format in preference.FORMATS:
        check_preference(format, file[0])


@FUZZ
@given(damaged_file(RLHF_PAIR_TEMPLATES, extra_keys=("captions", "options")))
def test_rlhf_preference_pairs(file):
    with tempfile.TemporaryDirectory() as folder:
        _, strict, lenient, _ = load_both_ways(folder, file[0], rlhf.load_preference_records)
        for record in (strict or []) + (lenient or []):
            assert all(
                isinstance(x, str) and x.strip() for x in (record.prompt, record.chosen, record.rejected)
            )
            assert all(isinstance(f, str) for f in record.facts + record.options)


@FUZZ
@given(damaged_file(RLHF_PROMPT_TEMPLATES, extra_keys=("facts",)))
def test_rlhf_prompts(file):
    with tempfile.TemporaryDirectory() as folder:
        _, strict, lenient, _ = load_both_ways(
            folder, file[0], rlhf.load_prompt_records, captions={"a.jpg": ["a cat"], "aok_a.jpg": ["x"]}
        )
        for record in (strict or []) + (lenient or []):
            assert isinstance(record.prompt, str) and record.prompt
            assert isinstance(record.length_bonus, float)
            assert record.answer is None or isinstance(record.answer, str)


def test_a_bad_image_pattern_is_a_data_error(tmp_path):
    path = tmp_path / "pope_data.json"
    path.write_text('[{"image_id": "abc", "question": "Q?", "chosen": "Yes.", "reject": "No."}]')
    for pattern in ("{oops}.jpg", "{image_id:012d}.jpg", "{0}.jpg"):
        with pytest.raises(DataError, match=f"{path}:1: image pattern"):
            preference.load_preference_records(path, image_pattern=pattern)
    assert preference.load_preference_records(path)[0].image == "abc.jpg"


NEGATIVE_TEMPLATES = [
    {"image": "1.png", "caption": "a red square", "negative": "a red circle", "kinds": ["object"]},
    {"caption": "a dog left of a cat", "negative": "a dog right of a cat", "kinds": ["relation"]},
]


@FUZZ
@given(damaged_file(NEGATIVE_TEMPLATES))
def test_hacl_negatives(file):
    from tether.data.negatives import load_negatives

    with tempfile.TemporaryDirectory() as folder:
        _, strict, lenient, _ = load_both_ways(folder, file[0], load_negatives)
        for pair in (strict or []) + (lenient or []):
            assert isinstance(pair.caption, str) and isinstance(pair.negative, str)
            assert pair.image is None or isinstance(pair.image, str)


def test_negatives_with_mistyped_kinds_or_image(tmp_path):
    from tether.data.negatives import load_negatives

    good = NEGATIVE_TEMPLATES[0]
    for line, bad in enumerate(({**good, "kinds": [["object"]]}, {**good, "image": {"a": 1}}), start=2):
        path = tmp_path / f"neg{line}.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError, match=f"{path}:2: field"):
            load_negatives(path)
        skips = SkipLog()
        assert len(load_negatives(path, skip_invalid=True, skips=skips)) == 1 and skips.skipped == 1
