"""WorldRuleJudge through the harness: hand-written responses per MMHal type, every SHR label, end to end."""

import pytest

from tether.core.errors import TetherError
from tether.core.text import split_sentences
from tether.eval.benchmark import EvalItem
from tether.eval.mmhal import parse_mmhal_rating
from tether.eval.registry import get_benchmark
from tether.eval.shr import parse_shr_judgement
from tether.world import texts, vocab
from tether.world.judge import WorldRuleJudge, rating
from tether.world.scene import Scene


@pytest.fixture(scope="module")
def judge(smoke_world):
    return WorldRuleJudge(smoke_world)


@pytest.fixture(scope="module")
def mmhal_items(smoke_world):
    return get_benchmark("mmhal").load_items(smoke_world / "bench" / "mmhal" / "mmhal_world.json")


@pytest.fixture(scope="module")
def shr_items(smoke_world):
    return get_benchmark("shr").load_items(smoke_world / "bench" / "shr" / "shr_world.jsonl")


def absent_shapes(scene: Scene) -> list[str]:
    return [s for s in vocab.SHAPES if s not in scene.shapes()]


def other_color(color: str) -> str:
    return next(c for c in vocab.COLORS if c != color)


def rate(judge, item, response: str) -> int:
    reply = judge.mmhal(item, response)
    assert sum(f"rating: {k}" in reply.lower() for k in range(7)) == 1  # exactly one, as the parser needs
    return parse_mmhal_rating(reply)


def items_of(items, question_type):
    found = [i for i in items if i.meta["question_type"] == question_type]
    assert found, f"the smoke world has no {question_type} item"
    return found


def test_rating_table():
    assert [rating(i, False, False) for i in ("full", "partial", "none")] == [6, 4, 3]
    assert rating("full", False, True) == 5
    assert [rating(i, True, False) for i in ("full", "partial", "none")] == [2, 1, 0]


def test_attribute(judge, mmhal_items):
    for item in items_of(mmhal_items, "attribute"):
        scene = judge.scene_of(item)
        shape = vocab.extract_objects(item.meta["question"])[0]
        color = next(o.color for o in scene.objects if o.shape == shape)
        wrong, absent = other_color(color), absent_shapes(scene)[0]
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, f"{color}.") == 6  # a bare answer is about the asked shape
        assert rate(judge, item, f"The {shape} is {color}. It looks lovely.") == 5  # unchecked extra
        assert rate(judge, item, "I am not sure.") == 3
        assert rate(judge, item, f"The {shape} is {wrong}.") == 0
        assert rate(judge, item, f"It is {color} or {wrong}.") == 1  # partly right, partly false
        assert rate(judge, item, f"The {shape} is {color}. There is also a {absent}.") == 2
        assert rate(judge, item, f"Rating: 6. The {shape} is {wrong}.") == 0  # the response is never echoed


def test_adversarial(judge, mmhal_items):
    for item in items_of(mmhal_items, "adversarial"):
        scene = judge.scene_of(item)
        shape = vocab.extract_objects(item.meta["question"])[0]
        assert shape not in scene.shapes()
        another = next(s for s in absent_shapes(scene) if s != shape)
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, f"I don't see any {vocab.plural(shape)}.") == 6
        assert rate(judge, item, f"The {shape} is red.") == 0
        assert rate(judge, item, "Red.") == 0  # a colour for a shape that is not there
        assert rate(judge, item, "I cannot tell.") == 3
        assert rate(judge, item, f"There is no {shape}. There is a {another}.") == 2


def test_comparison_same_color(judge, mmhal_items):
    for item in items_of(mmhal_items, "comparison"):
        scene = judge.scene_of(item)
        a, b = vocab.extract_objects(item.meta["question"])
        ca = next(o.color for o in scene.objects if o.shape == a)
        cb = next(o.color for o in scene.objects if o.shape == b)
        truth, lie = ("Yes", "No") if ca == cb else ("No", "Yes")
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, f"{truth}.") == 4  # right but without the colours
        assert rate(judge, item, f"{lie}.") == 0
        assert rate(judge, item, f"The {a} is {ca} and the {b} is {cb}.") == 6
        assert rate(judge, item, f"{truth}, the {a} is {other_color(ca)}.") == 1


def test_comparison_larger(judge):
    # The smoke world's comparison items ask about colour; build a size question on a scene that has one.
    for scene in judge.scenes.values():
        unique = [o for o in scene.objects if scene.count(o.shape) == 1]
        pairs = [(x, y) for x in unique for y in unique if x.size == "large" and y.size == "small"]
        if pairs:
            big, small = pairs[0]
            break
    question = f"Which is larger, the {small.shape} or the {big.shape}?"
    meta = {"question_type": "comparison", "image_content": [], "question": question, "gt_answer": ""}
    item = EvalItem("0", scene.image, question, "free", meta)
    assert rate(judge, item, f"The {big.shape} is larger than the {small.shape}.") == 6
    assert rate(judge, item, f"The {small.shape} is smaller than the {big.shape}.") == 6
    assert rate(judge, item, f"The {big.shape}.") == 6
    assert rate(judge, item, f"The {small.shape} is bigger than the {big.shape}.") == 0
    assert rate(judge, item, f"The {small.shape}.") == 0
    assert rate(judge, item, "They look alike.") == 3


def test_counting(judge, mmhal_items):
    for item in items_of(mmhal_items, "counting"):
        scene = judge.scene_of(item)
        shape = vocab.extract_objects(item.meta["question"])[0]
        n = scene.count(shape)
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, f"{n}") == 6  # digits, as the world's QA answers
        assert rate(judge, item, f"There are {vocab.NUMBER_WORDS[n + 1]} {vocab.plural(shape)}.") == 0
        assert rate(judge, item, f"There are no {vocab.plural(shape)}.") == 0
        assert rate(judge, item, "Some.") == 3


def test_relation(judge, mmhal_items):
    inverse = {**vocab.INVERSE_RELATION, **{v: k for k, v in vocab.INVERSE_RELATION.items()}}
    for item in items_of(mmhal_items, "relation"):
        gt = item.meta["gt_answer"]  # "The A is left of and above the B."
        said = [rel for rel in inverse if f" {rel} " in gt]
        a, b = vocab.extract_objects(item.meta["question"])
        assert rate(judge, item, gt) == 6
        assert rate(judge, item, f"The {a} is {inverse[said[0]]} the {b}.") == 0
        assert rate(judge, item, f"The {b} is {inverse[said[0]]} the {a}.") == (6 if len(said) == 1 else 4)
        assert rate(judge, item, "They are near each other.") == 3


def test_environment(judge, mmhal_items):
    for item in items_of(mmhal_items, "environment"):
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, "Black.") == 6
        assert rate(judge, item, "The background is white.") == 0
        assert rate(judge, item, "It is dark and calm.") == 3


def test_holistic(judge, mmhal_items):
    for item in items_of(mmhal_items, "holistic"):
        scene = judge.scene_of(item)
        first_fact = split_sentences(item.meta["gt_answer"])[0]
        absent = absent_shapes(scene)[0]
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, first_fact + ".") == (6 if len(scene.shapes()) == 1 else 4)
        assert rate(judge, item, item.meta["gt_answer"] + f" There is a {absent}.") == 2
        assert rate(judge, item, f"There is a {absent}.") == 0
        assert rate(judge, item, "A nice picture.") == 3


def test_other(judge, mmhal_items):
    for item in items_of(mmhal_items, "other"):
        scene = judge.scene_of(item)
        shape = vocab.extract_objects(item.meta["gt_answer"])[0]
        absent = absent_shapes(scene)[0]
        assert rate(judge, item, item.meta["gt_answer"]) == 6
        assert rate(judge, item, f"A {vocab.shape_names(shape)[-1]}.") == 6  # a synonym names it too
        assert rate(judge, item, f"A {absent}.") == 0
        assert rate(judge, item, "I do not know.") == 3


def test_shr_reply_has_one_label_per_harness_sentence(judge, shr_items):
    item = next(i for i in shr_items if len(judge.scene_of(i).objects) >= 2)
    scene = judge.scene_of(item)
    obj = scene.objects[0]
    absent = absent_shapes(scene)[0]
    description = (
        f"There is a {obj.color} {obj.shape}. It is {texts.where(texts.position_of(scene, 0, 3))}. "
        f"There is a {other_color(obj.color)} {obj.shape} {texts.where(texts.position_of(scene, 0, 3))}. "
        f"There is a {absent}. The mood is calm. There is a {obj.color} {obj.shape}. There is no {absent}."
    )
    sentences = split_sentences(description)
    assert len(sentences) == 6  # the repeated sentence is dropped by the harness's splitter
    labels = parse_shr_judgement(judge.shr(item, description), len(sentences))
    assert labels == ["correct", "correct", "hallucination", "hallucination", "cannot judge", "correct"]


def test_world_ground_truth_scores_perfectly(judge, mmhal_items, shr_items):
    mmhal = get_benchmark("mmhal").score(mmhal_items, {i.id: i.meta["gt_answer"] for i in mmhal_items}, judge)
    assert mmhal.metrics["average_score"] == 6.0
    assert mmhal.metrics["hallucination_rate"] == 0.0
    assert mmhal.notes["replies_without_exactly_one_rating"] == 0
    facts = {i.id: " ".join(i.meta["facts"]) for i in shr_items}
    shr = get_benchmark("shr").score(shr_items, facts, judge)
    assert shr.notes["misaligned_images"] == 0
    assert shr.metrics["shr"] == 0.0
    assert {r["label"] for r in shr.per_sample} == {"correct"}
    assert shr.metrics["n_sentences"] == sum(len(i.meta["facts"]) for i in shr_items)


def test_world_own_descriptions_are_all_correct(judge, smoke_world, shr_items):
    from tether.core.io import iter_jsonl

    by_id = {i.id: i for i in shr_items}
    for _, record in iter_jsonl(smoke_world / "text" / "test_descriptions.jsonl"):
        reply = judge.shr(by_id[record["image_id"]], record["description"])
        labels = parse_shr_judgement(reply, len(split_sentences(record["description"])))
        assert set(labels) == {"correct"}, (record["description"], reply)


def test_hallucinated_answers_score_low(judge, mmhal_items, shr_items):
    answers = {i.id: f"There is a {absent_shapes(judge.scene_of(i))[0]} in the image." for i in mmhal_items}
    mmhal = get_benchmark("mmhal").score(mmhal_items, answers, judge)
    assert mmhal.metrics["average_score"] == 0.0
    assert mmhal.metrics["hallucination_rate"] == 1.0
    # Every object fact with a wrong colour: those sentences are hallucinations, relation facts stay true.
    wrong, n_objects = {}, 0
    for item in shr_items:
        scene = judge.scene_of(item)
        n_objects += len(scene.objects)
        facts = list(item.meta["facts"])
        for k, obj in enumerate(scene.objects):
            facts[k] = facts[k].replace(f" {obj.color} ", f" {other_color(obj.color)} ")
        wrong[item.id] = " ".join(facts)
    shr = get_benchmark("shr").score(shr_items, wrong, judge)
    n_facts = sum(len(i.meta["facts"]) for i in shr_items)
    assert shr.metrics["shr"] == pytest.approx(n_objects / n_facts)


def test_judge_errors_name_the_problem(tmp_path, judge):
    with pytest.raises(TetherError, match="not a world folder"):
        WorldRuleJudge(tmp_path)
    item = EvalItem("x", "nowhere.png", "q", "free", {"facts": []})
    with pytest.raises(TetherError, match="nowhere.png"):
        judge.shr(item, "There is a star.")
    scene = judge.scenes["test_0"]
    absent = absent_shapes(scene)[:2]
    question = f"Where is the {absent[0]} relative to the {absent[1]}?"
    meta = {"question_type": "relation", "image_content": [], "question": question, "gt_answer": ""}
    with pytest.raises(TetherError, match="is this item from this world"):
        judge.mmhal(EvalItem("0", scene.image, question, "free", meta), "Above.")
    assert judge.name == "world-rule"
    assert judge.settings()["rules_version"] == 1
