"""Importers of tether's and LLaVA-RLHF's preference / PPO-prompt formats.

The LLaVA-RLHF records below follow the published schema (LLaVA-Human-Preference-10K, the PPO prompt
files, image_to_caption.json); the real files are not in the shared data.
"""

import json

import pytest

from tether.core.errors import DataError
from tether.core.io import SkipLog
from tether.data.rlhf import load_captions, load_preference_records, load_prompt_records

LLAVA_RLHF_PAIR = {
    "id": "000000123",
    "image": "000000000123.jpg",
    "conversations": [
        {"from": "human", "value": "<image>\nWhat is in the picture?"},
        {"from": "gpt", "value": "A cat."},
    ],
    "output_1": {"from": "llava", "value": "A cat on a sofa."},
    "output_2": {"from": "llava", "value": "A dog on the grass."},
    "preference": 2,
    "hallucination": 1,
}


def write(path, rows, as_list=False):
    path.write_text(json.dumps(rows) if as_list else "\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_llava_rlhf_preferences_with_captions(tmp_path):
    captions = load_captions(
        write(
            tmp_path / "image_to_caption.json",
            {"000000000123.jpg": ["A dog on grass.", "A brown dog."]},
            True,
        )
    )
    multi_turn = {
        **LLAVA_RLHF_PAIR,
        "conversations": [
            {"from": "human", "value": "<image>\nWhat animal is it?"},
            {"from": "gpt", "value": "A dog."},
            {"from": "human", "value": "What is it doing?"},
            {"from": "gpt", "value": "placeholder"},
        ],
        "preference": 1,
    }
    records = load_preference_records(
        write(tmp_path / "pref.json", [LLAVA_RLHF_PAIR, multi_turn], as_list=True), captions=captions
    )
    first, second = records
    assert (first.image, first.prompt, first.chosen, first.rejected) == (
        "000000000123.jpg",
        "What is in the picture?",
        "A dog on the grass.",
        "A cat on a sofa.",
    )
    assert first.facts == ["A dog on grass.", "A brown dog."]
    assert second.prompt == "User: What animal is it?\nAssistant: A dog.\nWhat is it doing?"
    assert (second.chosen, second.rejected) == ("A cat on a sofa.", "A dog on the grass.")


def test_tether_preferences_and_errors(tmp_path):
    row = {
        "image": "a.png",
        "prompt": "q",
        "chosen": "c",
        "rejected": "r",
        "facts": ["f"],
        "options": ["x", "y"],
    }
    (record,) = load_preference_records(write(tmp_path / "p.jsonl", [row]))
    assert (record.facts, record.options) == (["f"], ["x", "y"])
    bad = write(tmp_path / "bad.jsonl", [row, {**LLAVA_RLHF_PAIR, "preference": 3}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'preference' must be 1 or 2"):
        load_preference_records(bad)
    skips = SkipLog()
    assert len(load_preference_records(bad, skip_invalid=True, skips=skips)) == 1
    assert skips.skipped == 1
    with pytest.raises(DataError, match=r"p2\.jsonl:1: no captions for 'a\.png'"):
        load_preference_records(write(tmp_path / "p2.jsonl", [row]), captions={})


def test_llava_rlhf_ppo_prompts(tmp_path):
    rows = [
        {
            "image": "000000000456.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nIs there a cat?"},
                {"from": "gpt", "value": ""},
            ],
            "caption_type": 6,
            "length_bonus": 0.5,
        },
        {
            "image": "000000000456.jpg",
            "conversations": [{"from": "human", "value": "Which animal? A. dog B. cat\n<image>"}],
            "caption_type": 3,
        },
        {"image": "000000000789.jpg", "conversations": [{"from": "human", "value": "<image>\nDescribe it."}]},
    ]
    captions = {
        "000000000456.jpg": ["a cat"],
        "aok_000000000456.jpg": ["a cat on a mat"],
        "000000000789.jpg": ["a bus"],
    }
    yes_no, choice, general = load_prompt_records(write(tmp_path / "ppo.jsonl", rows), captions=captions)
    assert (yes_no.prompt, yes_no.answer, yes_no.length_bonus, yes_no.facts) == (
        "Is there a cat?",
        "no",
        0.5,
        ["a cat"],
    )
    assert (choice.prompt, choice.answer, choice.facts) == (
        "Which animal? A. dog B. cat",
        "B",
        ["a cat on a mat"],
    )
    assert (general.answer, general.length_bonus, general.facts) == (None, 1.0, ["a bus"])
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'caption_type' must be 1-7"):
        load_prompt_records(write(tmp_path / "bad.jsonl", [{**rows[0], "caption_type": 9}]))


def test_tether_ppo_prompts(tmp_path):
    rows = [
        {
            "image": "a.png",
            "prompt": "Is there a red square?",
            "answer": "yes",
            "facts": ["There is a red square."],
        },
        {"prompt": "text only", "options": ["a", "b"], "answer": "A"},
    ]
    first, second = load_prompt_records(write(tmp_path / "p.jsonl", rows))
    assert (first.answer, first.facts, second.image, second.options) == (
        "yes",
        ["There is a red square."],
        None,
        ["a", "b"],
    )
    with pytest.raises(DataError, match=r"field 'prompt' must be a non-empty string"):
        load_prompt_records(write(tmp_path / "q.jsonl", [{"image": "a.png", "prompt": ""}]))
