"""Benchmark files built from world scenes, in the official formats of POPE, CHAIR, MME, MMHal-Bench,
SHR and AMBER, so the evaluation code for real data runs unchanged on the world.

Every function here is pure: scenes (and training statistics) in, records out. ``build.py`` writes them.
Image names are relative to ``DIR/images``.
"""

import random
from collections import Counter
from dataclasses import dataclass

from tether.eval.mmhal import QUESTION_TYPES as MMHAL_TYPES
from tether.eval.pope import SPLITS as POPE_SPLITS
from tether.world import texts, vocab
from tether.world.config import WorldConfig
from tether.world.scene import Scene
from tether.world.texts import (
    ABSENT_ANSWER,
    BACKGROUND_ANSWER,
    BACKGROUND_QUESTION,
    COLOR_ANSWER,
    COLOR_QUESTION,
    COUNT_MANY,
    COUNT_ONE,
    EXISTENCE,
    HOW_MANY,
    LARGER_ANSWER,
    LARGER_QUESTION,
    POPE_QUESTION,
    RELATION,
    RELATIVE_ANSWER,
    RELATIVE_QUESTION,
    SAME_COLOR_NO,
    SAME_COLOR_QUESTION,
    SAME_COLOR_YES,
    SHAPE_AT,
    SIDE,
    STATE,
    THERE_ARE,
    THERE_IS_AT,
    THERE_IS_ONE,
)


@dataclass
class ShapeStats:
    """How often each shape, and each pair of shapes, appears in a set of scenes (counted per image)."""

    frequency: Counter  # shape -> number of scenes containing it
    cooccurrence: Counter  # (a, b) -> number of scenes containing both (both orders stored)
    n_scenes: int

    @classmethod
    def of(cls, scenes: list[Scene]) -> "ShapeStats":
        frequency, cooccurrence = Counter(), Counter()
        for scene in scenes:
            present = scene.shapes()
            frequency.update(present)
            cooccurrence.update((a, b) for a in present for b in present if a != b)
        return cls(frequency, cooccurrence, len(scenes))

    def most_expected(self, present, absent: list[str], shapes: list[str]) -> list[str]:
        """Absent shapes ranked by how much training co-occurrence with the present ones predicts them
        (ties: training frequency, then shape order). POPE's adversarial negatives, AMBER's hallu."""
        return _rank(
            absent, lambda s: (sum(self.cooccurrence[p, s] for p in present), self.frequency[s]), shapes
        )

    def conditional(self, given: str, other: str) -> float:
        """P(other in scene | given in scene)."""
        return self.cooccurrence[given, other] / self.frequency[given] if self.frequency[given] else 0.0


def _rank(candidates: list[str], key, shapes: list[str]) -> list[str]:
    """Highest key first (a number or a tuple of numbers); ties broken by the configured shape order."""

    def order(shape):
        value = key(shape)
        value = value if isinstance(value, tuple) else (value,)
        return (*(-v for v in value), shapes.index(shape))

    return sorted(candidates, key=order)


# ---------------------------------------------------------------- POPE




def _count_question(shape: str, n: int) -> str:
    """'Is there one star in this image?' / 'Are there two stars in this image?' (MME, AMBER)."""
    if n == 1:
        return COUNT_ONE.format(name=shape)
    return COUNT_MANY.format(count=vocab.NUMBER_WORDS[n], plural=vocab.plural(shape))


def pope_questions(scenes: list[Scene], train: ShapeStats, config: WorldConfig, strategy: str) -> list[dict]:
    """POPE question file (official fields ``question_id, image, text, label``) for one negative strategy.

    Per image, up to ``pope_objects_per_image`` present shapes become "yes" questions and as many absent
    shapes become "no" questions: random (uniform), popular (most frequent in train) or adversarial
    (most co-occurring in train with the present shapes). Yes and no alternate, as in the official files.
    """
    if strategy not in POPE_SPLITS:
        raise ValueError(f"unknown POPE strategy '{strategy}'")
    shapes = config.shapes
    negative_rng = random.Random(f"{config.seed}:pope:{strategy}")
    records = []
    for scene in scenes:
        present = [s for s in shapes if s in scene.shapes()]
        absent = [s for s in shapes if s not in scene.shapes()]
        k = min(config.pope_objects_per_image, len(present), len(absent))
        # The same "yes" objects in all three files, as in POPE.
        yes = random.Random(f"{config.seed}:pope:{scene.image_id}").sample(present, k)
        if strategy == "random":
            no = negative_rng.sample(absent, k)
        elif strategy == "popular":
            no = _rank(absent, lambda s: train.frequency[s], shapes)[:k]
        else:
            no = train.most_expected(present, absent, shapes)[:k]
        for yes_shape, no_shape in zip(yes, no):
            for shape, label in ((yes_shape, "yes"), (no_shape, "no")):
                records.append(
                    {
                        "question_id": len(records) + 1,
                        "image": scene.image,
                        "text": POPE_QUESTION.format(name=shape),
                        "label": label,
                    }
                )
    return records


# ---------------------------------------------------------------- CHAIR


def chair_ground_truth(scenes: list[Scene], shapes: list[str]) -> dict:
    """``{"objects": [canonical names], "images": {image_id: [indices]}}`` like shared/data/chair/derived."""
    return {
        "objects": list(shapes),
        "images": {s.image_id: sorted(shapes.index(x) for x in s.shapes()) for s in scenes},
    }


def chair_synonyms_text(shapes: list[str]) -> str:
    """CHAIR synonyms.txt: one line per object, canonical name first, then its synonyms."""
    return "".join(", ".join(vocab.shape_names(shape)) + "\n" for shape in shapes)


def chair_questions(scenes: list[Scene]) -> list[dict]:
    return [{"image_id": s.image_id, "image": s.image, "text": texts.DETAIL_PROMPT} for s in scenes]


# ---------------------------------------------------------------- MME

MME_SUBTASKS = ("existence", "count", "position", "color")


def mme_pairs(scene: Scene, subtask: str, config: WorldConfig) -> list[tuple[str, str]] | None:
    """MME's two questions for one image, the "Yes" one first (as in the release); None if not applicable."""
    rng = random.Random(f"{config.seed}:mme:{subtask}:{scene.image_id}")
    present = [s for s in config.shapes if s in scene.shapes()]
    absent = [s for s in config.shapes if s not in scene.shapes()]
    suffix = " " + texts.MME_SUFFIX
    if subtask == "existence":
        if not absent:
            return None
        yes = EXISTENCE.format(a_name=texts.with_article(rng.choice(present)))
        no = EXISTENCE.format(a_name=texts.with_article(rng.choice(absent)))
    elif subtask == "count":
        shape = rng.choice(present)
        n = scene.count(shape)
        wrong = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
        yes = _count_question(shape, n)
        no = _count_question(shape, wrong)
    elif subtask == "position":
        sides = []
        for i, obj in enumerate(scene.objects):
            row, col = obj.cell
            last = config.grid_size - 1
            for side, opposite, on_it in (
                ("left", "right", col == 0),
                ("right", "left", col == last),
                ("top", "bottom", row == 0),
                ("bottom", "top", row == last),
            ):
                if on_it and last > 0:
                    sides.append((i, side, opposite))
        if not sides:
            return None
        i, side, opposite = rng.choice(sides)
        ref = texts.refer(scene, i, config.grid_size)
        yes, no = SIDE.format(ref=ref, side=side), SIDE.format(ref=ref, side=opposite)
    elif subtask == "color":
        i = rng.randrange(len(scene.objects))
        obj = scene.objects[i]
        absent_colors = [
            c for c in config.colors if not any(o.shape == obj.shape and o.color == c for o in scene.objects)
        ]
        if not absent_colors:
            return None
        yes = EXISTENCE.format(a_name=texts.with_article(f"{obj.color} {obj.shape}"))
        no = EXISTENCE.format(a_name=texts.with_article(f"{rng.choice(absent_colors)} {obj.shape}"))
    else:
        raise ValueError(f"unknown MME subtask '{subtask}'")
    return [(yes + suffix, "Yes"), (no + suffix, "No")]


def mme_items(scenes: list[Scene], config: WorldConfig) -> dict[str, list[tuple[Scene, list]]]:
    """Per subtask, the first ``mme_images_per_subtask`` applicable scenes with their two questions."""
    items = {}
    for subtask in MME_SUBTASKS:
        chosen = []
        for scene in scenes:
            if len(chosen) == config.mme_images_per_subtask:
                break
            pairs = mme_pairs(scene, subtask, config)
            if pairs is not None:
                chosen.append((scene, pairs))
        items[subtask] = chosen
    return items


def mme_answer_file(pairs: list[tuple[str, str]]) -> str:
    """The release's questions_answers_YN/<image>.txt: 'question<TAB>Yes|No' per line."""
    return "".join(f"{question}\t{answer}\n" for question, answer in pairs)


# ---------------------------------------------------------------- MMHal-Bench



def mmhal_items(scenes: list[Scene], train: ShapeStats, config: WorldConfig) -> list[dict]:
    """MMHal-Bench items (the official answer-template fields), the 8 types in turn like the real file.

    A type that does not fit the next image (e.g. comparison with one object) moves on to the next image.
    """
    items: list[dict] = []
    for scene in scenes:
        if len(items) >= config.mmhal_items:
            break
        question_type = MMHAL_TYPES[len(items) % len(MMHAL_TYPES)]
        made = _mmhal_question(scene, question_type, train, config)
        if made is None:
            continue
        topic, question, answer = made
        items.append(
            {
                "question_type": question_type,
                "question_topic": topic,
                "image_id": scene.image_id,
                "image_src": "",
                "image": scene.image,
                "image_content": [f"{o.size} {o.color} {o.shape}" for o in scene.objects],
                "question": question,
                "gt_answer": answer,
                "model_answer": "",
            }
        )
    return items


def _mmhal_question(scene: Scene, question_type: str, train: ShapeStats, config: WorldConfig):
    grid = config.grid_size
    objects = scene.objects
    unique = [i for i, o in enumerate(objects) if scene.count(o.shape) == 1]
    refs = [texts.refer(scene, i, grid) for i in range(len(objects))]
    if question_type == "attribute":
        if not unique:
            return None
        i = unique[0]
        name = objects[i].shape
        return name, COLOR_QUESTION.format(name=name), COLOR_ANSWER.format(name=name, color=objects[i].color)
    if question_type == "adversarial":
        present = scene.shapes()
        absent = [s for s in config.shapes if s not in present]
        if not absent:
            return None
        # Ask about the absent shape the training prior most expects, as if it were there.
        name = train.most_expected(present, absent, config.shapes)[0]
        return name, COLOR_QUESTION.format(name=name), ABSENT_ANSWER.format(name=name)
    if question_type == "comparison":
        # Two objects of different shapes, so the references do not carry the colours being compared.
        pairs = [(i, j) for i in unique for j in unique if i < j]
        if not pairs:
            return None
        i, j = pairs[0]
        a, b = refs[i], refs[j]
        if objects[i].size != objects[j].size:
            big, small = (a, b) if objects[i].size == "large" else (b, a)
            return (
                objects[i].shape,
                LARGER_QUESTION.format(a=a, b=b),
                LARGER_ANSWER.format(a=big, b=small),
            )
        question = SAME_COLOR_QUESTION.format(a=a, b=b)
        if objects[i].color == objects[j].color:
            return objects[i].shape, question, SAME_COLOR_YES.format(color=objects[i].color)
        return (
            objects[i].shape,
            question,
            SAME_COLOR_NO.format(a=a, color_a=objects[i].color, b=b, color_b=objects[j].color),
        )
    if question_type == "counting":
        shape = max(sorted(scene.shapes(), key=config.shapes.index), key=scene.count)
        n = scene.count(shape)
        question = HOW_MANY.format(plural=vocab.plural(shape))
        if n == 1:
            return shape, question, THERE_IS_ONE.format(name=shape)
        return shape, question, THERE_ARE.format(count=vocab.NUMBER_WORDS[n], plural=vocab.plural(shape))
    if question_type == "relation":
        if len(objects) < 2:
            return None
        i, j = 0, len(objects) - 1
        rels = relations_between(scene, i, j)
        if not rels:
            return None
        question = RELATIVE_QUESTION.format(a=refs[i], b=refs[j])
        return (
            objects[i].shape,
            question,
            RELATIVE_ANSWER.format(a=refs[i], rel=" and ".join(rels), b=refs[j]),
        )
    if question_type == "environment":
        return "scene", BACKGROUND_QUESTION, BACKGROUND_ANSWER.format(color=vocab.BACKGROUND_NAME)
    if question_type == "holistic":
        facts = texts.fact_sentences(scene, grid)[: len(objects)]
        return "scene", texts.DETAIL_PROMPT, " ".join(facts)
    if question_type == "other":
        i = len(objects) // 2
        positions = [texts.position_of(scene, k, grid) for k in range(len(objects))]
        if positions.count(positions[i]) > 1:  # grids larger than 3x3 share position names
            return None
        position = texts.where(positions[i])
        phrase = texts.with_article(f"{objects[i].color} {objects[i].shape}")
        return (
            objects[i].shape,
            SHAPE_AT.format(where=position),
            THERE_IS_AT.format(obj=phrase, where=position),
        )
    raise ValueError(f"unknown MMHal type '{question_type}'")


def relations_between(scene: Scene, i: int, j: int) -> list[str]:
    """How object i stands to object j in words: e.g. ['left of', 'above'], or ['right of']."""
    rels = []
    for rel in vocab.RELATIONS:
        if (i, rel, j) in scene.relations:
            rels.append(rel)
        elif (j, rel, i) in scene.relations:
            rels.append(vocab.INVERSE_RELATION[rel])
    return rels


# ---------------------------------------------------------------- SHR


def shr_items(scenes: list[Scene], grid_size: int) -> list[dict]:
    """SHR-style items: the detailed-description prompt and one ground-truth fact per object/relation."""
    return [
        {
            "image_id": s.image_id,
            "image": s.image,
            "prompt": texts.DETAIL_PROMPT,
            "facts": texts.fact_sentences(s, grid_size),
        }
        for s in scenes
    ]


# ---------------------------------------------------------------- AMBER


def amber_files(scenes: list[Scene], train: ShapeStats, config: WorldConfig) -> dict[str, list | dict]:
    """AMBER's annotations.json, query_generative.json, query_discriminative.json and relation.json.

    relation.json is AMBER's word-association table ({object: [words that count as that object]}); the
    official scorer only counts nouns listed there, so it maps each shape to its one-word synonyms.

    As in the release, generative ids come first (1..N), then discriminative ones. ``hallu`` lists the
    absent shapes the training prior most expects (highest co-occurrence with the present ones).
    The world has no actions, so there is no discriminative-attribute-action type.
    """
    annotations, generative, discriminative = [], [], []
    for scene in scenes:
        present = scene.shapes()
        absent = [s for s in config.shapes if s not in present]
        hallu = train.most_expected(present, absent, config.shapes)[: config.amber_hallu_objects]
        annotations.append(
            {
                "id": len(annotations) + 1,
                "type": "generative",
                "truth": [o.shape for o in scene.objects],
                "hallu": hallu,
            }
        )
        generative.append({"id": len(generative) + 1, "image": scene.image, "query": texts.AMBER_PROMPT})
    for scene in scenes:
        for kind, query, truth in _amber_discriminative(scene, train, config):
            annotations.append({"id": len(annotations) + 1, "type": kind, "truth": truth})
            discriminative.append({"id": annotations[-1]["id"], "image": scene.image, "query": query})
    return {
        "annotations.json": annotations,
        "query_generative.json": generative,
        "query_discriminative.json": discriminative,
        "relation.json": {
            shape: [n for n in vocab.SHAPE_SYNONYMS[shape] if " " not in n] for shape in config.shapes
        },
    }


def _amber_discriminative(scene: Scene, train: ShapeStats, config: WorldConfig) -> list[tuple[str, str, str]]:
    rng = random.Random(f"{config.seed}:amber:{scene.image_id}")
    grid = config.grid_size
    present = [s for s in config.shapes if s in scene.shapes()]
    absent = [s for s in config.shapes if s not in scene.shapes()]
    out = []
    a_name = texts.with_article(rng.choice(present))
    out.append(("discriminative-hallucination", EXISTENCE.format(a_name=a_name), "yes"))
    if absent:
        expected = train.most_expected(present, absent, config.shapes)[0]
        a_name = texts.with_article(expected)
        out.append(("discriminative-hallucination", EXISTENCE.format(a_name=a_name), "no"))

    i = rng.randrange(len(scene.objects))
    obj, ref = scene.objects[i], texts.refer(scene, i, grid)
    if ref == obj.shape:  # a colour in the reference would answer the question
        other_color = rng.choice([c for c in config.colors if c != obj.color])
        out.append(("discriminative-attribute-state", STATE.format(ref=ref, state=obj.color), "yes"))
        out.append(("discriminative-attribute-state", STATE.format(ref=ref, state=other_color), "no"))

    shape = rng.choice(present)
    n = scene.count(shape)
    out.append(("discriminative-attribute-number", _count_question(shape, n), "yes"))
    out.append(("discriminative-attribute-number", _count_question(shape, n + 1), "no"))

    if scene.relations:
        a, rel, b = rng.choice(scene.relations)
        ra, rb = texts.refer(scene, a, grid), texts.refer(scene, b, grid)
        out.append(("discriminative-relation", RELATION.format(a=ra, rel=rel, b=rb), "yes"))
        out.append(("discriminative-relation", RELATION.format(a=rb, rel=rel, b=ra), "no"))
    return out
