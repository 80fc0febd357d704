import json

import pytest

from tether.core.errors import DataError
from tether.core.io import SkipLog
from tether.data.preference import (
    HADPO_DESC_PROMPTS,
    PreferenceRecord,
    load_preference_records,
    write_preference_records,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_hadpo_desc_dict_is_every_chosen_rejected_combination(tmp_path):
    path = tmp_path / "desc_data.json"
    path.write_text(
        json.dumps({"2338": {"chosen": ["A cat.\n", "A cat on a mat."], "rejected": ["A dog."]}}, indent=2)
    )
    records = load_preference_records(path)
    assert [(r.chosen, r.rejected) for r in records] == [("A cat.", "A dog."), ("A cat on a mat.", "A dog.")]
    assert records[0].images == ["2338.jpg"]
    assert records[0].prompt in HADPO_DESC_PROMPTS
    assert records[0].source == {"format": "hadpo_desc", "file": str(path), "line": 1, "image_id": "2338"}


def test_hadpo_desc_list_version_with_image_pattern(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"image_id": 7, "chosen": ["a"], "rejected": ["b", "c"]}])
    records = load_preference_records(path, image_pattern="VG_100K/{image_id}.jpg")
    assert [r.rejected for r in records] == ["b", "c"]
    assert records[0].images == ["VG_100K/7.jpg"]


def test_hadpo_pope_skips_correct_answers_and_takes_reject_or_rejected(tmp_path):
    rows = [
        {"image_id": 1, "question": "Is there a cat?", "chosen": "Yes.", "reject": "No.", "correct": False},
        {"image_id": 2, "question": "Is there a dog?", "chosen": "No.", "reject": "Yes.", "correct": True},
        {"image_id": 3, "question": "Is there a cup?", "chosen": "No.", "rejected": "Yes.", "correct": False},
    ]
    path = tmp_path / "pope_data.json"
    path.write_text(json.dumps(rows, indent=1))
    skips = SkipLog()
    records = load_preference_records(path, skips=skips)
    assert [(r.prompt, r.chosen, r.rejected, r.image) for r in records] == [
        ("Is there a cat?", "Yes.", "No.", "1.jpg"),
        ("Is there a cup?", "No.", "Yes.", "3.jpg"),
    ]
    assert skips.skipped == 1 and "correct" in skips.reasons[0]


def test_llava_rlhf_preferences_mean_the_same_to_dpo_and_the_reward_model(tmp_path):
    """Issue 23, problem 4: LLaVA-RLHF's file (outputs fill the last gpt turn, multi-turn conversations
    included) gives the same pairs to `train dpo` and `train reward`; nothing is skipped."""
    from tether.data.rlhf import load_preference_records as load_reward_pairs

    def row(pref, turns):
        return {
            "id": "x",
            "image": "COCO_train2014_1.jpg",
            "conversations": turns,
            "output_1": {"from": "llava", "value": "one"},
            "output_2": {"from": "llava", "value": "two"},
            "preference": pref,
        }

    question = {"from": "human", "value": "<image>\nWhat is here?"}
    slot = {"from": "gpt", "value": ""}
    earlier = [{"from": "human", "value": "<image>\nWhat animal?"}, {"from": "gpt", "value": "A dog."}]
    rows = [row(1, [question, slot]), row(2, [question, slot]), row(1, [*earlier, question, slot])]
    path = write_jsonl(tmp_path / "llava_7b_v1_preference.jsonl", rows)
    skips = SkipLog()
    dpo_pairs = [
        (r.prompt, r.chosen, r.rejected, r.image) for r in load_preference_records(path, skips=skips)
    ]
    reward_pairs = [(r.prompt, r.chosen, r.rejected, r.image) for r in load_reward_pairs(path)]
    assert dpo_pairs == reward_pairs and skips.skipped == 0
    assert [p[:3] for p in dpo_pairs] == [
        ("What is here?", "one", "two"),
        ("What is here?", "two", "one"),
        ("User: What animal?\nAssistant: A dog.\nWhat is here?", "one", "two"),
    ]
    bad = write_jsonl(tmp_path / "bad.jsonl", [row(1, [question, slot]), row(3, [question, slot])])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'preference' must be 1 or 2"):
        load_preference_records(bad)


def test_rlaif_v_and_canonical_round_trip(tmp_path):
    path = write_jsonl(
        tmp_path / "rlaif.jsonl",
        [{"question": "q", "chosen": "c", "rejected": "r", "image_path": "a/b.jpg", "ds_name": "OK-VQA"}],
    )
    (record,) = load_preference_records(path)
    assert (record.prompt, record.image, record.source["ds_name"]) == ("q", "a/b.jpg", "OK-VQA")
    out = tmp_path / "pairs.jsonl"
    write_preference_records(out, [record, PreferenceRecord("p", "c2", "r2", ["x.png"])])
    again = load_preference_records(out)
    assert [r.to_json() for r in again] == [record.to_json(), {**again[1].to_json()}]
    assert again[0].source == record.source and again[1].images == ["x.png"]


def test_errors_name_file_and_line(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "p", "chosen": "c", "rejected": "r", "images": ["a.png"]},
            {"prompt": "p", "chosen": "c", "images": ["a.png"]},
        ],
    )
    with pytest.raises(DataError, match=r"p\.jsonl:2: field 'rejected' must be a non-empty string"):
        load_preference_records(path, format="tether")
    skips = SkipLog()
    assert len(load_preference_records(path, skip_invalid=True, skips=skips)) == 1
    assert skips.skipped == 1
    two = write_jsonl(
        tmp_path / "two.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r", "images": ["a", "b"]}]
    )
    with pytest.raises(DataError, match="exactly one image"):
        load_preference_records(two)
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match=r"u\.jsonl:1: cannot tell the preference format"):
        load_preference_records(unknown)
