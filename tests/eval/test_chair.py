import json

import pytest
from eval_helpers import write_jsonl

from tether.core.errors import DataError
from tether.core.text import corrected_singularize, pattern_singularize, tokenize
from tether.eval.chair import Chair, Vocabulary, chair_metrics


@pytest.fixture
def vocabulary(data_dir):
    return Vocabulary.from_file(data_dir / "chair" / "synonyms.txt")


def test_vocabulary_matches_reference_pickle(data_dir, vocabulary):
    reference = json.loads((data_dir / "chair" / "derived" / "chair_pkl_vocab.json").read_text())
    # The pickle also maps "" (from the file's last empty line), which no token can be.
    assert vocabulary.canonical == {k: v for k, v in reference["inverse_synonym_dict"].items() if k}
    assert vocabulary.double_words == reference["double_word_dict"]
    assert " motor bike" in vocabulary.canonical and "bison" in vocabulary.canonical


# pattern.en's singularize outputs (Pattern 2.6), errors included: the published CHAIR numbers have them.
@pytest.mark.parametrize(
    "word, singular",
    [
        ("dogs", "dog"),
        ("bus", "bu"),  # pattern's error
        ("buses", "bus"),
        ("ties", "ty"),  # pattern's error ("^tie" in its list is never matched)
        ("glasses", "glass"),
        ("people", "person"),
        ("men", "man"),
        ("women", "woman"),
        ("knives", "knife"),
        ("benches", "bench"),
        ("skies", "sky"),
        ("sheep", "sheep"),
        ("tvs", "tv"),
        ("taxis", "taxi"),
        ("corgis", "corgi"),
        ("broccolis", "broccoli"),
        ("skis", "ski"),
        ("kiwis", "kiwi"),
        ("scissors", "scissors"),
        ("shelves", "shelve"),  # ends with the irregular "helves"
        ("ears", "ears"),  # a word that ends "shears" is left alone
        ("leaves", "leaf"),
        ("potatoes", "potato"),
        ("mice", "mouse"),
        ("dogs'", "dog's"),
        ("mothers-in-law", "mother-in-law"),
        ("forks/spoons", "forks/spoon"),
    ],
)
def test_pattern_singularize(word, singular):
    assert pattern_singularize(word) == singular


@pytest.mark.parametrize(
    "word, singular", [("bus", "bus"), ("ties", "tie"), ("glasses", "glass"), ("tvs", "tv"), ("dogs", "dog")]
)
def test_corrected_singularize(vocabulary, word, singular):
    assert corrected_singularize(word, vocabulary.words) == singular


def test_tokenize_as_nltk_word_tokenize():
    assert tokenize("A child's T-shirt, two forks/spoons. Men's hats.") == [
        "a", "child", "'s", "t-shirt", ",", "two", "forks/spoons", ".", "men", "'s", "hats", ".",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "caption, mentions",
    [
        ("Two hot dogs on a plate.", [("hot dog", "hot dog")]),
        ("A baby elephant and a man.", [("elephant", "elephant"), ("man", "person")]),
        ("The seat of the toilet.", [("toilet", "toilet")]),  # "seat" (chair) dropped next to "toilet"
        ("A toilet seat.", [("toilet", "toilet")]),
        ("People ride buses.", [("person", "person"), ("bus", "bus")]),
        ("A bus and ties.", []),  # pattern: "bu", "ty"
        ("The men's tvs, taxis and skis.", [("man", "person"), ("tv", "tv"), ("taxi", "car"), ("ski", "skis")]),
        ("Forks/spoons.", []),  # one token, as NLTK keeps it
        ("A dog and another dog.", [("dog", "dog"), ("dog", "dog")]),
        ("A motor bike.", []),  # the reference's " motor bike" entry never matches
    ],
)
def test_mentions(vocabulary, caption, mentions):
    assert vocabulary.mentions(caption) == mentions


def test_metrics_hand_computed():
    records = [
        {"mentions": ["dog", "dog", "cat"], "hallucinated": ["cat"], "gt_objects": ["dog", "person"]},
        {"mentions": ["car"], "hallucinated": [], "gt_objects": ["car"]},
    ]
    m = chair_metrics(records)
    assert m["chair_s"] == 0.5
    assert m["chair_i"] == pytest.approx(1 / 4)
    assert m["recall"] == pytest.approx(2 / 3)


def test_maxlinn_example(data_dir, run_cli):
    chair = data_dir / "chair"
    code, out, _ = run_cli(
        "eval",
        "chair",
        "score",
        "--captions",
        chair / "maxlinn" / "example_inputs.jsonl",
        "--gt",
        chair / "derived" / "coco2014_imid_to_objects.pattern.json",
        "--synonyms",
        chair / "synonyms.txt",
        "--json",
    )
    metrics = json.loads(out)
    assert code == 0
    assert (metrics["chair_s"], metrics["chair_i"]) == (0.0, 0.0)
    assert round(metrics["recall"] * 100, 1) == 85.7


def test_maxlinn_generated_words(data_dir, vocabulary):
    chair = data_dir / "chair"
    expected = json.loads((chair / "maxlinn" / "outputs.json").read_text())["sentences"]
    captions = [
        json.loads(line) for line in (chair / "maxlinn" / "example_inputs.jsonl").read_text().splitlines()
    ]
    for caption, reference in zip(captions, expected):
        assert [c for _, c in vocabulary.mentions(caption["caption"])] == reference["mscoco_generated_words"]


def test_opera_llava_reproduces_published_chair_i(data_dir, run_cli):
    # Published: CHAIR_s 44.6, CHAIR_i 12.8 (OPERA's chair.py: NLTK tagger + WordNet lemmas). With the
    # original's pattern singulariser CHAIR_i is 12.8 to the digit; CHAIR_s is one caption of 500 higher.
    chair = data_dir / "chair"
    code, out, _ = run_cli(
        "eval",
        "chair",
        "score",
        "--captions",
        chair / "opera_log" / "llava-1.5" / "ours.jsonl",
        "--gt",
        chair / "derived" / "coco2014_imid_to_objects.nltk.json",
        "--synonyms",
        chair / "synonyms.txt",
        "--json",
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["n"] == 500
    assert round(metrics["chair_i"] * 100, 1) == 12.8
    assert round(metrics["chair_s"] * 500) == 224  # published 44.6 = 223 captions


def test_bad_input(data_dir, tmp_path):
    chair = data_dir / "chair"
    captions = write_jsonl(
        tmp_path / "c.jsonl", [{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]
    )
    from tether.eval.chair import read_captions

    with pytest.raises(DataError, match=r"c.jsonl:2: duplicate caption for image '1'"):
        read_captions(captions)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"objects": ["dog"], "images": {"1": [3]}}))
    with pytest.raises(DataError, match="index out of range"):
        Chair().load_items(gt, synonyms=chair / "synonyms.txt")
    gt.write_text(json.dumps({"objects": ["unicorn"], "images": {}}))
    with pytest.raises(DataError, match="not in the synonym list"):
        Chair().load_items(gt, synonyms=chair / "synonyms.txt")
