"""AMBER: tether's default scoring equals the official ``inference.py`` (printed digits) on generated
annotations, associations and replies. Noun extraction is shared: the official's needs NLTK's tagger
and WordNet data, which do not install (the documented deviation)."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from official_cli import score_json
from official_scorers import amber

from tether.eval.amber import extract_nouns

OBJECTS = ["road", "ground", "tree", "car", "dog", "sky"]
EXTRA = ["street", "path", "puppy", "cloud", "camera"]
TYPES = [
    "discriminative-hallucination", "discriminative-attribute-state", "discriminative-attribute-number",
    "discriminative-attribute-action", "discriminative-relation", "relation",
]  # fmt: skip
caption_words = st.sampled_from(OBJECTS + EXTRA + ["Road", "dogs", "trees", "a", "the", "on", ".", ",", "is"])
generative = st.fixed_dictionaries({
    "type": st.just("generative"),
    "truth": st.lists(st.sampled_from(OBJECTS), max_size=3, unique=True),
    "hallu": st.lists(st.sampled_from(OBJECTS), max_size=3, unique=True),
    "response": st.lists(caption_words, min_size=1, max_size=10).map(" ".join),
})  # fmt: skip
discriminative = st.fixed_dictionaries({
    "type": st.sampled_from(TYPES),
    "truth": st.sampled_from(["yes", "no"]),
    "response": st.sampled_from(["Yes", "No", "yes", "No.", "Maybe"]),
})  # fmt: skip


def _score_with_tether(folder: Path, records: list[dict], association: dict, safe: list[str]) -> dict:
    annotations = [{"id": k, **{key: r[key] for key in r if key != "response"}}
                   for k, r in enumerate(records, start=1)]  # fmt: skip
    (folder / "annotations.json").write_text(json.dumps(annotations))
    (folder / "relation.json").write_text(json.dumps(association))
    (folder / "safe_words.txt").write_text("".join(w + "\n" for w in safe))
    (folder / "query.json").write_text(
        json.dumps([{"id": k, "image": f"AMBER_{k}.jpg", "query": "q"} for k in range(1, len(records) + 1)])
    )
    (folder / "answers.json").write_text(
        json.dumps([{"id": k, "response": r["response"]} for k, r in enumerate(records, start=1)])
    )
    return score_json("eval", "amber", "score", "--queries", folder / "query.json",
                      "--annotations", folder / "annotations.json", "--answers", folder / "answers.json")  # fmt: skip


def _official(records, association, safe):
    annotations = [{key: r[key] for key in r if key != "response"} for r in records]
    responses = [{"id": k, "response": r["response"]} for k, r in enumerate(records, start=1)]
    vocabulary = set(association) | {w for words in association.values() for w in words}
    return amber(responses, annotations, association, safe, lambda text: extract_nouns(text, vocabulary))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(generative, discriminative), min_size=1, max_size=8),
    st.fixed_dictionaries({o: st.lists(st.sampled_from(OBJECTS + EXTRA), max_size=3, unique=True) for o in OBJECTS}),
    st.lists(st.sampled_from(EXTRA), max_size=2),
)
def test_amber_equals_official(records, association, safe):
    official = _official(records, association, safe)
    with tempfile.TemporaryDirectory() as folder:
        metrics = _score_with_tether(Path(folder), records, association, safe)
    for name, value in metrics.items():
        if name.endswith("/n"):
            continue
        assert round(value * 100, 1) == official[name], name


def test_case1_association_word_credits_the_first_object(tmp_path):
    """Issue 27 case 1: a word listed under several annotated objects is credited by the official code
    to the first such object (association words searched before names); tether credited the last."""
    association = {"road": ["ground"], "ground": ["road"], "tree": []}
    records = [{"type": "generative", "truth": ["road", "ground", "tree"], "hallu": [],
                "response": "There is a road on the ground."}]  # fmt: skip
    official = _official(records, association, [])
    metrics = _score_with_tether(tmp_path, records, association, [])
    assert official["generative/cover"] == 66.6 == round(metrics["generative/cover"] * 100, 1)


def test_corrected_drops_the_epsilon_and_f1_rounding(tmp_path):
    """The documented corrections: exact ratios, F1 from unrounded precision and recall."""
    records = [{"type": "discriminative-hallucination", "truth": t, "response": r}
               for t, r in [("no", "No"), ("no", "No"), ("no", "Yes"), ("yes", "No"), ("yes", "Yes")]]  # fmt: skip
    official = _official(records, {}, [])
    _score_with_tether(tmp_path, records, {}, [])
    corrected = score_json("eval", "amber", "score", "--queries", tmp_path / "query.json", "--annotations",
                           tmp_path / "annotations.json", "--answers", tmp_path / "answers.json", "--corrected")  # fmt: skip
    assert corrected["discriminative/precision"] == 2 / 3 and corrected["discriminative/recall"] == 2 / 3
    assert corrected["discriminative/f1"] == pytest.approx(2 / 3)
    assert official["discriminative/f1"] == 66.6  # from 66.7 and 66.7, with its epsilon
