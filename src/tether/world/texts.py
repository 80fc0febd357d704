"""Texts written from scene graphs: captions, detailed descriptions, QA, instruction conversations.

Every text is true of its scene (the graph is the ground truth). Shapes are named with synonyms and
plurals so that evaluators must map free text back to canonical names. Every template lives in a
module-level constant, so ``world_words()`` can list every word a world text can contain.
"""

import random
import re

from tether.world import vocab
from tether.world.scene import Scene

# Prompts shared with the benchmark exports.
DETAIL_PROMPT = "Describe this image in detail."
CAPTION_PROMPT = "Give a short caption for this image."
AMBER_PROMPT = "Describe this image."
MME_SUFFIX = "Please answer yes or no."
SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
IMAGE_TOKEN = "<image>"

POPE_QUESTION = "Is there a {name} in the image?"


CAPTION_TEMPLATES = (
    "{objects}.",
    "A picture of {objects}.",
    "{count} on a black background: {objects}.",
    "An image with {objects}.",
)
OBJECT_SENTENCES = (
    "There is {obj} {where}.",
    "{obj} sits {where}.",
    "{where}, there is {obj}.",
    "I can see {obj} {where}.",
)
SINGLE_OBJECT_SENTENCES = (
    ("There is {obj}.", "It is {where}."),
    ("The image shows {obj}.", "The {name} is {where}."),
)
RELATION_SENTENCES = ("The {a} is {rel} the {b}.", "We see the {a} {rel} the {b}.")
EXISTENCE_QUESTIONS = ("Is there {a_name} in the image?", "Do you see {a_name}?")
COLOR_QUESTION = "What color is the {name}?"
SIZE_QUESTION = "What size is the {name}?"
COUNT_QUESTION = "How many {plural} are there?"
WHERE_QUESTION = "Where is the {ref}?"
RELATION_QUESTION = "Is the {a} {rel} the {b}?"
ANSWERS = ("Yes", "No")

# Where-phrases: "in the top left", "at the top", "on the left", "in the center".
_WHERE_PREFIX = {"top": "at the", "bottom": "at the", "left": "on the", "right": "on the"}

# Phrasing of the benchmark exports (world/exports.py; COLOR_QUESTION above is shared), listed in
# EXPORT_TEMPLATES for world_words().
EXISTENCE = "Is there {a_name} in this image?"
COUNT_ONE = "Is there one {name} in this image?"
COUNT_MANY = "Are there {count} {plural} in this image?"
SIDE = "Is the {ref} on the {side} side of the image?"
STATE = "Is the {ref} {state} in this image?"
RELATION = "Is the {a} {rel} the {b} in this image?"
COLOR_ANSWER = "The {name} is {color}."
ABSENT_ANSWER = "There is no {name} in the image."
LARGER_QUESTION = "Which is larger, the {a} or the {b}?"
LARGER_ANSWER = "The {a} is larger than the {b}."
SAME_COLOR_QUESTION = "Are the {a} and the {b} the same color?"
SAME_COLOR_YES = "Yes, both are {color}."
SAME_COLOR_NO = "No, the {a} is {color_a} and the {b} is {color_b}."
HOW_MANY = "How many {plural} are in the image?"
THERE_IS_ONE = "There is one {name} in the image."
THERE_ARE = "There are {count} {plural} in the image."
RELATIVE_QUESTION = "Where is the {a} relative to the {b}?"
RELATIVE_ANSWER = "The {a} is {rel} the {b}."
BACKGROUND_QUESTION = "What color is the background?"
BACKGROUND_ANSWER = "The background is {color}."
SHAPE_AT = "What shape is {where}?"
THERE_IS_AT = "There is {obj} {where}."
EXPORT_TEMPLATES = (
    POPE_QUESTION, EXISTENCE, COUNT_ONE, COUNT_MANY, SIDE, STATE, RELATION, COLOR_QUESTION, COLOR_ANSWER,
    ABSENT_ANSWER, LARGER_QUESTION, LARGER_ANSWER, SAME_COLOR_QUESTION, SAME_COLOR_YES, SAME_COLOR_NO,
    HOW_MANY, THERE_IS_ONE, THERE_ARE, RELATIVE_QUESTION, RELATIVE_ANSWER, BACKGROUND_QUESTION,
    BACKGROUND_ANSWER, SHAPE_AT, THERE_IS_AT,
)  # fmt: skip


def where(position: str) -> str:
    return f"{_WHERE_PREFIX.get(position, 'in the')} {position}"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def capitalize(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def pick_name(rng: random.Random, shape: str) -> str:
    """The canonical name most of the time, otherwise a synonym."""
    names = vocab.shape_names(shape)
    return shape if len(names) == 1 or rng.random() < 0.6 else rng.choice(names[1:])


def position_of(scene: Scene, i: int, grid_size: int) -> str:
    return vocab.position_name(*scene.objects[i].cell, grid_size)


def refer(scene: Scene, i: int, grid_size: int, name: str | None = None) -> str:
    """The shortest unambiguous reference to object ``i``: 'box', 'red box', 'small red box', 'red box in the top left'."""
    obj = scene.objects[i]
    name = name or obj.shape
    others = [o for k, o in enumerate(scene.objects) if k != i]
    if all(o.shape != obj.shape for o in others):
        return name
    if all((o.shape, o.color) != (obj.shape, obj.color) for o in others):
        return f"{obj.color} {name}"
    if all((o.shape, o.color, o.size) != (obj.shape, obj.color, obj.size) for o in others):
        return f"{obj.size} {obj.color} {name}"
    return f"{obj.color} {name} {where(position_of(scene, i, grid_size))}"


def object_phrase(rng: random.Random, scene: Scene, i: int, with_size: bool | None = None) -> str:
    obj = scene.objects[i]
    with_size = rng.random() < 0.5 if with_size is None else with_size
    words = ([obj.size] if with_size else []) + [obj.color, pick_name(rng, obj.shape)]
    return with_article(" ".join(words))


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(rng: random.Random, scene: Scene) -> str:
    """One short sentence naming every object."""
    objects = join_list([object_phrase(rng, scene, i) for i in range(len(scene.objects))])
    n = len(scene.objects)
    count = f"{vocab.NUMBER_WORDS[n]} shape" + ("s" if n > 1 else "")
    return capitalize(rng.choice(CAPTION_TEMPLATES).format(objects=objects, count=count))


def object_sentence(rng: random.Random, scene: Scene, i: int, grid_size: int) -> str:
    return capitalize(
        rng.choice(OBJECT_SENTENCES).format(
            obj=object_phrase(rng, scene, i), where=where(position_of(scene, i, grid_size))
        )
    )


def relation_sentence(rng: random.Random, scene: Scene, relation: tuple, grid_size: int) -> str:
    i, rel, j = relation
    if rng.random() < 0.5:  # say it the other way round: "b is right of a"
        i, rel, j = j, vocab.INVERSE_RELATION[rel], i
    a = refer(scene, i, grid_size, pick_name(rng, scene.objects[i].shape))
    b = refer(scene, j, grid_size, pick_name(rng, scene.objects[j].shape))
    return capitalize(rng.choice(RELATION_SENTENCES).format(a=a, rel=rel, b=b))


def description(rng: random.Random, scene: Scene, grid_size: int) -> str:
    """2-5 sentences, each about one object or one relation; order and wording vary."""
    n = len(scene.objects)
    if n == 1:
        first, second = rng.choice(SINGLE_OBJECT_SENTENCES)
        obj = scene.objects[0]
        name = pick_name(rng, obj.shape)
        phrase = with_article(
            f"{obj.size} {obj.color} {name}" if rng.random() < 0.5 else f"{obj.color} {name}"
        )
        return " ".join(
            [
                first.format(obj=phrase),
                second.format(where=where(position_of(scene, 0, grid_size)), name=name),
            ]
        )
    order = list(range(n))
    if rng.random() < 0.5:
        rng.shuffle(order)
    sentences = [object_sentence(rng, scene, i, grid_size) for i in order]
    room = min(5 - n, len(scene.relations))
    if room > 0:
        for relation in rng.sample(scene.relations, rng.randint(0, room)):
            sentences.append(relation_sentence(rng, scene, relation, grid_size))
    return " ".join(sentences)


def qa_pairs(rng: random.Random, scene: Scene, shapes: list[str], grid_size: int) -> list[dict]:
    """Existence (one yes, one no), attribute, count and position questions with short answers."""
    qa = []
    present = sorted(scene.shapes(), key=shapes.index)
    absent = [s for s in shapes if s not in scene.shapes()]
    template = rng.choice(EXISTENCE_QUESTIONS)
    qa.append(
        _qa(template.format(a_name=with_article(pick_name(rng, rng.choice(present)))), "Yes", "existence")
    )
    if absent:
        qa.append(
            _qa(template.format(a_name=with_article(pick_name(rng, rng.choice(absent)))), "No", "existence")
        )

    unique = [i for i, o in enumerate(scene.objects) if scene.count(o.shape) == 1]
    if unique:
        i = rng.choice(unique)
        name = pick_name(rng, scene.objects[i].shape)
        if rng.random() < 0.7:
            qa.append(_qa(COLOR_QUESTION.format(name=name), scene.objects[i].color, "attribute"))
        else:
            qa.append(_qa(SIZE_QUESTION.format(name=name), scene.objects[i].size, "attribute"))

    shape = rng.choice(present) if not absent or rng.random() < 0.7 else rng.choice(absent)
    plural = vocab.plural(pick_name(rng, shape))
    qa.append(_qa(COUNT_QUESTION.format(plural=plural), str(scene.count(shape)), "count"))

    if scene.relations and rng.random() < 0.5:
        i, rel, j = rng.choice(scene.relations)
        truth = rng.random() < 0.5
        if not truth:  # swap the objects: "a left of b" true means "b left of a" false
            i, j = j, i
        a, b = refer(scene, i, grid_size), refer(scene, j, grid_size)
        qa.append(_qa(RELATION_QUESTION.format(a=a, rel=rel, b=b), "Yes" if truth else "No", "position"))
    else:
        i = rng.randrange(len(scene.objects))
        answer = position_of(scene, i, grid_size)
        qa.append(_qa(WHERE_QUESTION.format(ref=refer(scene, i, grid_size)), answer, "position"))
    return qa


def grounding_questions(rng: random.Random, scene: Scene, grid_size: int) -> list[dict]:
    """Colour, size and position questions about every uniquely-shaped object: the attribute-reading
    curriculum of the baseline recipe (docs/baseline.md), denser than ``qa_pairs``' one attribute question."""
    qa = []
    for i, obj in enumerate(scene.objects):
        if scene.count(obj.shape) != 1:
            continue
        name = pick_name(rng, obj.shape)
        qa.append(_qa(COLOR_QUESTION.format(name=name), obj.color, "attribute"))
        qa.append(_qa(SIZE_QUESTION.format(name=name), obj.size, "attribute"))
        qa.append(_qa(WHERE_QUESTION.format(ref=name), position_of(scene, i, grid_size), "position"))
    return qa


def _qa(question: str, answer: str, qa_type: str) -> dict:
    return {"question": capitalize(question), "answer": answer, "qa_type": qa_type}


def conversation(rng: random.Random, scene: Scene, shapes: list[str], grid_size: int) -> list[dict]:
    """A LLaVA-format instruction conversation: a description, caption or question, then 0-2 more questions."""
    qa = qa_pairs(rng, scene, shapes, grid_size)
    rng.shuffle(qa)
    first = rng.random()
    if first < 0.4:
        turns = [(DETAIL_PROMPT, description(rng, scene, grid_size))]
    elif first < 0.6:
        turns = [(CAPTION_PROMPT, caption(rng, scene))]
    else:
        turns = [(qa[0]["question"], qa[0]["answer"])]
        qa = qa[1:]
    turns += [(q["question"], q["answer"]) for q in qa[: rng.randint(0, 2)]]
    messages = []
    for k, (question, answer) in enumerate(turns):
        human = f"{IMAGE_TOKEN}\n{question}" if k == 0 else question
        messages += [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
    return messages


def fact_sentences(scene: Scene, grid_size: int) -> list[str]:
    """Canonical ground-truth facts: one sentence per object and per relation (SHR's reference)."""
    facts = []
    for i, obj in enumerate(scene.objects):
        phrase = with_article(f"{obj.size} {obj.color} {obj.shape}")
        facts.append(f"There is {phrase} {where(position_of(scene, i, grid_size))}.")
    for i, rel, j in scene.relations:
        facts.append(
            capitalize(f"the {refer(scene, i, grid_size)} is {rel} the {refer(scene, j, grid_size)}.")
        )
    return facts


def world_words() -> list[str]:
    """Every word any world text can contain, lowercase and sorted; '. , ? :' are tokens of their own.

    The placeholder ``<image>`` is not included: the model layer adds it as a special token.
    """
    words: set[str] = set()
    templates = (
        CAPTION_TEMPLATES
        + OBJECT_SENTENCES
        + tuple(s for pair in SINGLE_OBJECT_SENTENCES for s in pair)
        + RELATION_SENTENCES
        + EXISTENCE_QUESTIONS
        + (COLOR_QUESTION, SIZE_QUESTION, COUNT_QUESTION, WHERE_QUESTION, RELATION_QUESTION)
        + ANSWERS
        + EXPORT_TEMPLATES
        + (DETAIL_PROMPT, CAPTION_PROMPT, AMBER_PROMPT, MME_SUFFIX, SHORT_ANSWER_SUFFIX)
        # words that code, not templates, puts into texts: with_article, where(), join_list, caption counts
        + ("a an", "in the", *_WHERE_PREFIX.values(), ", and", "shape shapes", *vocab.POSITIONS)
    )
    for template in templates:
        words.update(vocab.split_words(re.sub(r"\{\w+\}", " ", template)))
    for shape in vocab.SHAPES:
        for name in vocab.shape_names(shape):
            words.update(name.split() + vocab.plural(name).split())
    words.update(vocab.COLORS)
    words.add(vocab.BACKGROUND_NAME)
    words.update(vocab.SIZES)
    words.update(vocab.NUMBER_WORDS)
    words.update(str(k) for k in range(10))
    for relation in vocab.RELATIONS + list(vocab.INVERSE_RELATION.values()):
        words.update(relation.split())
    words.discard(IMAGE_TOKEN)
    return sorted(words)
