import json
from collections import Counter

from world_helpers import read_scenes

from tether.world import exports
from tether.world.config import WorldConfig
from tether.world.scene import Scene, SceneObject, derive_relations, sample_split
from tether.world.vocab import extract_objects


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scene(image_id, *shapes):
    objects = [SceneObject(s, "red", "small", (0, k), (0, 0, 1, 1)) for k, s in enumerate(shapes)]
    return Scene(image_id, image_id + ".png", objects, derive_relations(objects))


def test_pope_files_match_the_official_format_and_the_graphs(smoke_world, shared_data):
    scenes = {s.image: s for s in read_scenes(smoke_world, "test").values()}
    official = _jsonl(shared_data / "pope" / "coco_pope_random.jsonl")[0]
    for strategy in exports.POPE_SPLITS:
        records = _jsonl(smoke_world / "bench" / "pope" / f"world_pope_{strategy}.jsonl")
        assert records and all(set(r) == set(official) for r in records)
        assert [r["question_id"] for r in records] == list(range(1, len(records) + 1))
        assert Counter(r["label"] for r in records)["yes"] * 2 == len(records)
        for r in records:
            (shape,) = extract_objects(r["text"])
            assert r["text"] == f"Is there a {shape} in the image?"
            assert r["label"] == ("yes" if shape in scenes[r["image"]].shapes() else "no")


def test_pope_negatives_follow_the_paper():
    config = WorldConfig(pope_objects_per_image=1)
    # train: circle+square co-occur twice, triangle appears most often, heart once
    train = exports.ShapeStats.of(
        [_scene("t_0", "circle", "square"), _scene("t_1", "circle", "square", "triangle"),
         _scene("t_2", "triangle"), _scene("t_3", "triangle", "heart")]
    )  # fmt: skip
    test = [_scene("test_0", "circle")]
    no = {
        s: [r for r in exports.pope_questions(test, train, config, s) if r["label"] == "no"]
        for s in ("popular", "adversarial")
    }
    assert no["popular"][0]["text"] == "Is there a triangle in the image?"  # most frequent absent shape
    assert no["adversarial"][0]["text"] == "Is there a square in the image?"  # co-occurs with the circle
    yes = [r for r in exports.pope_questions(test, train, config, "random") if r["label"] == "yes"]
    assert yes[0]["text"] == "Is there a circle in the image?"


def test_pope_adversarial_negatives_are_the_hidden_partners():
    # Test scenes break the bias: whenever a pair member is present and its partner absent, the
    # adversarial file asks about the partner.
    config = WorldConfig(n_train=500, n_test=200)
    train = exports.ShapeStats.of(sample_split(config, "train"))
    test = sample_split(config, "test")
    partner = config.partner_of()
    records = exports.pope_questions(test, train, config, "adversarial")
    asked = {}
    for r in records:
        if r["label"] == "no":
            asked.setdefault(r["image"], set()).update(extract_objects(r["text"]))
    hits = total = 0
    for scene in test:
        missing = {partner[s] for s in scene.shapes() if s in partner and partner[s] not in scene.shapes()}
        if len(missing) == 1 and len(scene.shapes()) == 1:
            total += 1
            hits += missing <= asked.get(scene.image, set())
    assert total > 10 and hits == total


def test_chair_files_have_the_shapes_of_the_real_ones(smoke_world, shared_data):
    gt = json.loads((smoke_world / "bench" / "chair" / "gt_objects.json").read_text())
    real = json.loads((shared_data / "chair" / "derived" / "coco2014_imid_to_objects.nltk.json").read_text())
    assert set(gt) == set(real) == {"objects", "images"}
    scenes = read_scenes(smoke_world, "test")
    assert set(gt["images"]) == set(scenes)
    for image_id, indices in gt["images"].items():
        assert {gt["objects"][i] for i in indices} == scenes[image_id].shapes()
    lines = (smoke_world / "bench" / "chair" / "synonyms.txt").read_text().splitlines()
    real_lines = (shared_data / "chair" / "synonyms.txt").read_text().splitlines()
    assert real_lines[0].split(", ")[0] == "person"  # same layout: canonical first, ", " separated
    assert lines[1].split(", ") == ["square", "box", "block"]
    assert lines[-1].split(", ") == ["ring", "donut", "hollow circle"]
    questions = _jsonl(smoke_world / "bench" / "chair" / "questions.jsonl")
    assert len(questions) == len(scenes) and questions[0]["text"] == "Describe this image in detail."


def test_mme_release_layout_and_answers(smoke_world, smoke_config):
    scenes = {s.image_id: s for s in read_scenes(smoke_world, "test").values()}
    for subtask in exports.MME_SUBTASKS:
        folder = smoke_world / "bench" / "mme" / subtask
        answer_files = sorted((folder / "questions_answers_YN").glob("*.txt"))
        assert len(answer_files) == smoke_config.mme_images_per_subtask
        for path in answer_files:
            assert (folder / "images" / (path.stem + ".png")).is_file()
            lines = path.read_text().splitlines()
            assert [line.split("\t")[1] for line in lines] == ["Yes", "No"]
            assert all(line.split("\t")[0].endswith("? Please answer yes or no.") for line in lines)
            scene = scenes[path.stem]
            if subtask == "existence":
                present = [extract_objects(line)[0] in scene.shapes() for line in lines]
                assert present == [True, False]
            if subtask == "count":
                shape = extract_objects(lines[0])[0]
                words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
                assert words[scene.count(shape)] in lines[0].split()
                assert words[scene.count(shape)] not in lines[1].split()


def test_mmhal_items_use_the_official_template_fields(smoke_world, smoke_config, shared_data):
    items = json.loads((smoke_world / "bench" / "mmhal" / "mmhal_world.json").read_text())
    real = json.loads((shared_data / "mmhal" / "mmhal-bench_answer_template.json").read_text())
    assert len(items) == smoke_config.mmhal_items
    assert all(set(item) == set(real[0]) | {"image"} for item in items)
    # the eight types in turn, like the real file (type = position mod 8)
    assert [item["question_type"] for item in items[:8]] == [r["question_type"] for r in real[:8]]
    scenes = read_scenes(smoke_world, "test")
    for item in items:
        scene = scenes[item["image_id"]]
        assert item["model_answer"] == "" and len(item["image_content"]) == len(scene.objects)
        if item["question_type"] == "adversarial":
            (shape,) = extract_objects(item["question"])
            assert shape not in scene.shapes() and item["gt_answer"] == f"There is no {shape} in the image."
        if item["question_type"] == "attribute":
            (shape,) = extract_objects(item["question"])
            (obj,) = [o for o in scene.objects if o.shape == shape]
            assert item["gt_answer"] == f"The {shape} is {obj.color}."


def test_shr_facts_are_one_per_object_and_relation(smoke_world):
    scenes = read_scenes(smoke_world, "test")
    items = _jsonl(smoke_world / "bench" / "shr" / "shr_world.jsonl")
    assert len(items) == len(scenes)
    for item in items:
        scene = scenes[item["image_id"]]
        assert len(item["facts"]) == len(scene.objects) + len(scene.relations)
        object_facts = item["facts"][: len(scene.objects)]
        assert [extract_objects(f)[0] for f in object_facts] == [o.shape for o in scene.objects]


def test_amber_files_follow_the_official_shapes(smoke_world, shared_data):
    folder = smoke_world / "bench" / "amber"
    annotations = json.loads((folder / "annotations.json").read_text())
    generative = json.loads((folder / "query_generative.json").read_text())
    discriminative = json.loads((folder / "query_discriminative.json").read_text())
    real = json.loads((shared_data / "amber" / "annotations.json").read_text())
    real_keys = {a["type"]: set(a) for a in real}
    assert {a["type"] for a in annotations} <= set(real_keys)
    assert all(set(a) == real_keys[a["type"]] for a in annotations)
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    real_query = json.loads((shared_data / "amber" / "query" / "query_generative.json").read_text())[0]
    assert all(set(q) == set(real_query) for q in generative + discriminative)
    assert generative[0]["query"] == real_query["query"]

    relation = json.loads((folder / "relation.json").read_text())
    real_relation = json.loads((shared_data / "amber" / "relation.json").read_text())
    assert isinstance(real_relation["person"], list) and relation["square"] == ["box", "block"]

    scenes = {s.image: s for s in read_scenes(smoke_world, "test").values()}
    by_id = {a["id"]: a for a in annotations}
    for q in generative:
        scene, a = scenes[q["image"]], by_id[q["id"]]
        assert sorted(a["truth"]) == sorted(o.shape for o in scene.objects)
        assert not set(a["hallu"]) & scene.shapes()
    for q in discriminative:
        a = by_id[q["id"]]
        assert a["truth"] in ("yes", "no")
        if a["type"] == "discriminative-hallucination":
            (shape,) = extract_objects(q["query"])
            assert a["truth"] == ("yes" if shape in scenes[q["image"]].shapes() else "no")
