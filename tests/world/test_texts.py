import json
import random
from collections import Counter

from world_helpers import read_scenes

from tether.world import texts
from tether.world.config import WorldConfig
from tether.world.scene import sample_split
from tether.world.vocab import extract_objects, split_words


def _all_texts(world):
    """Every string a model can see or be scored against in a built world."""
    for path in sorted((world / "text").glob("*.jsonl")) + sorted((world / "bench").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            yield from _strings(json.loads(line))
    for path in sorted((world / "bench").rglob("*.json")):
        yield from _strings(json.loads(path.read_text()))
    for path in sorted((world / "bench" / "mme").rglob("*.txt")):
        yield from path.read_text().split("\t")
    yield from (world / "text" / "lm_corpus.txt").read_text().splitlines()


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in (
                "image_id",
                "image",
                "question_id",
                "image_src",
                "question_type",
                "question_topic",
                "type",
                "qa_type",
                "from",
            ):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_world_words_cover_every_text_and_stay_small(smoke_world):
    words = set(texts.world_words())
    assert len(words) < 300
    assert {".", ",", "?", ":", "yes", "no", "box", "boxes", "hollow", "plus"} <= words
    assert all(w == w.lower() for w in words)
    seen = set()
    for text in _all_texts(smoke_world):
        seen.update(w for w in split_words(text.replace(texts.IMAGE_TOKEN, "")))
    assert seen - words == set()


def test_captions_name_exactly_the_objects(smoke_world):
    scenes = read_scenes(smoke_world, "train")
    for line in (smoke_world / "text" / "train_captions.jsonl").read_text().splitlines():
        record = json.loads(line)
        scene = scenes[record["image_id"]]
        assert Counter(extract_objects(record["caption"])) == Counter(o.shape for o in scene.objects)


def test_descriptions_have_2_to_5_sentences_and_mention_only_present_objects():
    config = WorldConfig(max_objects=5, n_train=200)
    rng = random.Random(0)
    for scene in sample_split(config, "train"):
        text = texts.description(rng, scene, config.grid_size)
        sentences = [s for s in text.split(".") if s.strip()]
        assert 2 <= len(sentences) <= 5, text
        assert set(extract_objects(text)) == scene.shapes(), text  # every object, nothing else


def test_qa_answers_are_true_of_the_graph(smoke_world):
    scenes = read_scenes(smoke_world, "train")
    kinds = Counter()
    for line in (smoke_world / "text" / "train_qa.jsonl").read_text().splitlines():
        qa = json.loads(line)
        scene = scenes[qa["image_id"]]
        kinds[qa["qa_type"]] += 1
        named = extract_objects(qa["question"])
        if qa["qa_type"] == "existence":
            assert qa["answer"] == ("Yes" if named[0] in scene.shapes() else "No")
        elif qa["qa_type"] == "count":
            assert qa["answer"] == str(scene.count(named[0]))
        elif qa["qa_type"] == "attribute":
            (obj,) = [o for o in scene.objects if o.shape == named[0]]
            assert qa["answer"] in (obj.color, obj.size)
        else:
            assert qa["answer"] in ("Yes", "No") or qa["answer"] in texts.vocab.POSITIONS
    assert set(kinds) == {"existence", "attribute", "count", "position"}


def test_conversations_are_llava_format(smoke_world):
    for line in (smoke_world / "text" / "train_conversations.jsonl").read_text().splitlines():
        turns = json.loads(line)["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<image>\n")
        assert all("<image>" not in t["value"] for t in turns[1:])


def test_relation_facts_are_true():
    config = WorldConfig(max_objects=4, n_test=50)
    for scene in sample_split(config, "test"):
        facts = texts.fact_sentences(scene, config.grid_size)
        assert len(facts) == len(scene.objects) + len(scene.relations)
