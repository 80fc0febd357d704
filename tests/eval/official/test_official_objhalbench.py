"""Object HalBench: tether's scoring equals RLHF-V's ``compute_chair`` and summary (re-implemented in
official_scorers.py) on real model answers (OPERA's LLaVA-1.5 captions of COCO images) and on generated
ones, by rule and from judge object lists. The lemmatiser both use is tether's WordNet one (WordNet data
does not install; its verdicts are checked in tests/eval/test_objhalbench.py)."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from official_cli import score_json
from official_scorers import OfficialCrash, objhalbench

from tether.core.text import tokenize
from tether.eval.objhalbench import FUNCTION_WORDS, ObjectVocabulary, wordnet_lemma

WORDS = [
    "a", "the", "two", "men", "man", "bikers", "biker", "buses", "vases", "vase", "toilet", "seat", "wine",
    "glasses", "glass", "baby", "cat", "cats", "hot", "dog", "teddy", "bear", "children", "sports", "ball",
    "dining", "table", "red", "car", "fire", "hydrant", "and", ",", ".", "people", "knives",
]  # fmt: skip
OBJECTS = ["person", "dog", "cat", "toilet", "chair", "bus", "vase", "car", "dining table", "teddy bear"]
answers = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
phrases = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join), max_size=4)


def _noun_runs(lemmas):  # the tagger's noun runs, taken as tether takes them (the documented deviation)
    runs, current = [], []
    for word in [*lemmas, "a"]:
        if word in FUNCTION_WORDS or not any(c.isalpha() for c in word):
            runs, current = runs + ([" ".join(current)] if current else []), []
        else:
            current.append(word)
    return runs


def _write(folder: Path, cases, gt) -> tuple[Path, Path]:
    gt_file, answer_file = folder / "gt.json", folder / "answers.jsonl"
    gt_file.write_text(json.dumps({"objects": OBJECTS,
                                   "images": {k: [OBJECTS.index(o) for o in v] for k, v in gt.items()}}))  # fmt: skip
    answer_file.write_text("".join(json.dumps({"question_id": k, "image_id": k, "prompt": "Describe.", "text": a})
                                   + "\n" for k, (a, _, _) in enumerate(cases)))  # fmt: skip
    return gt_file, answer_file


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(answers, phrases, st.sets(st.sampled_from(OBJECTS))), min_size=1, max_size=5),
       st.booleans())  # fmt: skip
@example([("two cats and a dog", ["cat", "dog"], {"dog"}), ("the men", ["men"], {"cat"})], False)
@example([("two cats and a dog", ["cat", "dog"], {"dog"}), ("the men", ["men"], {"cat"})], True)
def test_objhalbench_equals_official(data_dir, cases, by_judge):
    synonyms = data_dir / "objhalbench" / "synonyms_refine.txt"
    nouns = ObjectVocabulary.from_files(synonyms).nouns
    gt = {k: objects for k, (_, _, objects) in enumerate(cases)}
    extracted = {k: listed for k, (_, listed, _) in enumerate(cases)} if by_judge else None
    try:
        official = objhalbench([(k, a) for k, (a, _, _) in enumerate(cases)], gt, synonyms.read_text().splitlines(),
                               lambda text: [wordnet_lemma(w, nouns) for w in tokenize(text)], extracted,
                               _noun_runs)  # fmt: skip
    except OfficialCrash:
        return  # no answer names an object, or no ground truth: the script divides by zero, tether gives 0.0
    with tempfile.TemporaryDirectory() as folder:
        gt_file, answer_file = _write(Path(folder), cases, gt)
        options = ["--synonyms", synonyms, "--gt", gt_file, "--answers", answer_file]
        if by_judge:
            replies = Path(folder) / "replies.jsonl"
            replies.write_text("".join(json.dumps({"question_id": k, "text": json.dumps(listed)}) + "\n"
                                       for k, (_, listed, _) in enumerate(cases)))  # fmt: skip
            options += ["--objects", "judge", "--judge-output", replies]
        metrics = score_json("eval", "objhalbench", "score", *options)
    for name, value in official.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name


def test_objhalbench_equals_official_on_real_answers(data_dir, tmp_path):
    """100 LLaVA-1.5 answers on COCO images (OPERA's log) against their COCO objects (the CHAIR ground truth
    shipped in shared data), scored by rule."""
    synonyms = data_dir / "objhalbench" / "synonyms_refine.txt"
    truth = json.loads((data_dir / "chair" / "derived" / "coco2014_imid_to_objects.nltk.json").read_text())
    lines = (data_dir / "chair" / "opera_log" / "llava-1.5" / "greedy.jsonl").read_text().splitlines()[:100]
    records = [json.loads(line) for line in lines]
    gt = {str(r["image_id"]): {truth["objects"][i] for i in truth["images"][str(r["image_id"])]} for r in records}
    nouns = ObjectVocabulary.from_files(synonyms).nouns
    official = objhalbench([(str(r["image_id"]), r["caption"]) for r in records], gt,
                           synonyms.read_text().splitlines(),
                           lambda text: [wordnet_lemma(w, nouns) for w in tokenize(text)])  # fmt: skip
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": n, "image_id": r["image_id"], "text": r["caption"]}) + "\n"
                               for n, r in enumerate(records)))  # fmt: skip
    subset = tmp_path / "gt.json"  # the 100 images' entries of the shipped file, unchanged
    subset.write_text(json.dumps({"objects": truth["objects"], "images": {k: truth["images"][k] for k in gt}}))
    metrics = score_json("eval", "objhalbench", "score", "--synonyms", synonyms, "--answers", answers,
                         "--gt", subset)  # fmt: skip
    for name, value in official.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
