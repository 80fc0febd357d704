"""SHR: tether's default scoring equals HA-DPO's ``shr_eval`` metrics on generated descriptions and
judge replies, misaligned judgements and descriptions without a sentence included."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from official_cli import score_json
from official_scorers import OfficialCrash, shr

descriptions = st.lists(st.sampled_from(["A dog", "A dog sits", "A cat", "Red sky", ".", " ", ". "]),
                        min_size=1, max_size=6).map("".join).filter(str.strip)  # fmt: skip
labels = st.sampled_from(["hallucination", "correct", "cannot judge", "unsure"])
replies = st.tuples(st.sampled_from(["", "Some analysis\n"]), st.lists(labels, max_size=5)).map(
    lambda r: r[0] + "Judgement:\n" + "".join(f"{k}. {label}: because\n" for k, label in enumerate(r[1], 1))
)


def _score(folder: Path, cases: list[tuple[str, str]], *options) -> dict:
    write = lambda name, rows: (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("items.jsonl", [{"image_id": k, "image": f"{k}.jpg", "facts": ["a fact"]} for k in range(len(cases))])
    write("answers.jsonl", [{"image_id": k, "text": d} for k, (d, _) in enumerate(cases)])
    write("judge.jsonl", [{"image_id": k, "text": r} for k, (_, r) in enumerate(cases)])
    return score_json("eval", "shr", "score", "--items", folder / "items.jsonl", "--answers",
                      folder / "answers.jsonl", "--judge-output", folder / "judge.jsonl", *options)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(descriptions, replies), min_size=1, max_size=5))
def test_shr_equals_official(cases):
    try:
        official = shr({str(k): d for k, (d, _) in enumerate(cases)}, {str(k): r for k, (_, r) in enumerate(cases)})
    except OfficialCrash:
        return  # no judged sentence at all: HA-DPO divides by zero, tether reports 0.0
    with tempfile.TemporaryDirectory() as folder:
        metrics = _score(Path(folder), cases)
    assert metrics["n_images"] == official["num_images"]
    for ours, theirs in [("sents_per_image", "sents_per_image"), ("hal_sents_per_image", "hal_sents_per_image"),
                         ("shr", "hal_sents_ratio"), ("hal_words_ratio", "hal_words_ratio")]:  # fmt: skip
        assert metrics[ours] == pytest.approx(official[theirs], abs=1e-12), ours


def test_case2_misaligned_and_sentenceless_images_count_per_image(tmp_path):
    """Issue 27 case 2: HA-DPO keeps an image whose judgement does not align with its sentences, and one
    whose description has no sentence, in the image count; tether dropped them (0.5 vs 1.0 per image)."""
    cases = [
        ("A dog. A cat.", "Judgement:\n1. hallucination: no dog\n2. correct: yes\n"),
        ("...", "Judgement:\n"),  # no sentence
        ("A red car.", "Judgement:\n1. correct: yes\n2. correct: again\n"),  # two labels for one sentence
    ]
    official = shr({str(k): d for k, (d, _) in enumerate(cases)}, {str(k): r for k, (_, r) in enumerate(cases)})
    metrics = _score(tmp_path, cases)
    assert official["hal_sents_per_image"] == metrics["hal_sents_per_image"] == pytest.approx(1 / 3)
    assert official["sents_per_image"] == metrics["sents_per_image"] == 1.0
    corrected = _score(tmp_path, cases, "--corrected")
    assert corrected["hal_sents_per_image"] == 1.0 and corrected["sents_per_image"] == 2.0  # image 1 only
