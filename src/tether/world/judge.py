"""A rule judge for the synthetic world: MMHal-style ratings and SHR judgements decided from scene graphs.

It implements the harness's judge protocol (``tether.eval.judge_protocol.Judge``): it returns reply
text in the shape an LLM judge writes, and the benchmarks parse it with their official rules, so
MMHal-Bench and SHR run offline and deterministically on a world. The sentence logic is in
``tether.world.claims``; the rating table is in docs/world_judge.md.
"""

from dataclasses import dataclass
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.io import iter_jsonl, read_json
from tether.core.text import split_sentences
from tether.eval.benchmark import EvalItem
from tether.eval.mmhal import QUESTION_TYPES
from tether.world import claims, texts, vocab
from tether.world.claims import INVERSE, Sentence
from tether.world.scene import Scene, SceneObject

JUDGE_NAME = "world-rule"
RULES_VERSION = 1
# Words that carry an answer even in a sentence the scene graph cannot check alone ("Blue.", "Two.").
ANSWER_WORDS = (
    claims.COLOR_WORDS
    | claims.SIZE_WORDS
    | set(vocab.NUMBER_WORDS)
    | {"yes", "no", "background", "left", "right", "above", "below", "top", "bottom", "center"}
)


@dataclass
class Verdict:
    """How a response answers its question: right (the asked fact stated), complete, wrong (a false answer)."""

    right: bool
    complete: bool
    wrong: bool
    note: str


def rating(informative: str, hallucinated: bool, unchecked_extra: bool) -> int:
    """The MMHal-Bench rubric as a table: informativeness ("full", "partial", "none") x hallucination."""
    if hallucinated:
        return {"full": 2, "partial": 1, "none": 0}[informative]
    if informative == "full":
        return 5 if unchecked_extra else 6
    return {"partial": 4, "none": 3}[informative]


class WorldRuleJudge:
    """Judge MMHal-style and SHR items of a built world from its test scene graphs."""

    name = JUDGE_NAME

    def __init__(self, world_dir):
        self.world_dir = Path(world_dir)
        if not (self.world_dir / "world.json").is_file():
            raise TetherError(
                f"{world_dir} is not a world folder (no world.json); run `tether world build` first"
            )
        self.grid_size = read_json(self.world_dir / "world.json")["config"]["grid_size"]
        path = self.world_dir / "scenes" / "test.jsonl"
        self.scenes = {}
        for _, record in iter_jsonl(path):
            scene = Scene.from_dict(record)
            self.scenes[scene.image] = self.scenes[scene.image_id] = scene

    def settings(self) -> dict:
        return {"world": str(self.world_dir), "scenes": "test", "rules_version": RULES_VERSION}

    def scene_of(self, item: EvalItem) -> Scene:
        scene = self.scenes.get(item.image) or self.scenes.get(item.id)
        if scene is None:
            raise TetherError(f"image '{item.image}' is not in {self.world_dir}/scenes/test.jsonl")
        return scene

    # ------------------------------------------------------------ SHR

    def label_sentences(self, scene: Scene, sentences: list[str]) -> list[tuple[str, str]]:
        """(label, reason) per sentence, labels as in SHR: hallucination, correct, cannot judge."""
        parsed = claims.parse_text(sentences)
        return [claims.sentence_label(claims.check_sentence(s, scene, self.grid_size)) for s in parsed]

    def shr(self, item: EvalItem, description: str) -> str:
        """One judgement line per sentence of the harness's own segmentation, in HA-DPO's reply format."""
        labels = self.label_sentences(self.scene_of(item), split_sentences(description))
        lines = [f"{n}. {label}: {reason}" for n, (label, reason) in enumerate(labels, start=1)]
        return "Judgement:\n" + "".join(line + "\n" for line in lines)

    # ------------------------------------------------------------ MMHal-Bench

    def mmhal(self, item: EvalItem, response: str) -> str:
        """A short explanation, then exactly one "Rating: k"."""
        scene = self.scene_of(item)
        sentences = split_sentences(response)
        parsed = claims.parse_text(sentences)
        labels = [claims.sentence_label(claims.check_sentence(s, scene, self.grid_size)) for s in parsed]
        question = claims.parse_sentence(item.meta["question"])
        if item.meta["question_type"] not in QUESTION_TYPES:
            raise TetherError(
                f"the world rule judge has no rule for question type '{item.meta['question_type']}'"
            )
        verdict = getattr(self, f"_{item.meta['question_type']}")(scene, question, parsed, labels)
        false_sentences = [n for n, (label, _) in enumerate(labels, start=1) if label == "hallucination"]
        hallucinated = verdict.wrong or bool(false_sentences)
        informative = "full" if verdict.right and verdict.complete else "partial" if verdict.right else "none"
        unchecked = [
            n
            for n, (sentence, (label, _)) in enumerate(zip(parsed, labels), start=1)
            if label == "cannot judge" and not any(t in ANSWER_WORDS or t.isdigit() for t in sentence.tokens)
        ]
        score = rating(informative, hallucinated, bool(unchecked))
        parts = [f"Question type {item.meta['question_type']}: {verdict.note}."]
        for n in false_sentences:
            parts.append(f"Sentence {n} is false ({labels[n - 1][1]}).")
        if unchecked:
            parts.append(f"Sentences {unchecked} cannot be checked against the scene.")
        parts.append(f"Hallucination: {'Yes' if hallucinated else 'No'}.")
        return " ".join(parts) + f"\nRating: {score}"

    def _asked_object(self, scene: Scene, mention) -> SceneObject:
        """The object a question refers to (questions name objects unambiguously)."""
        found = claims.matches(scene, mention, self.grid_size)
        if not found:
            raise TetherError(
                f"no {mention.describe()} in scene {scene.image_id}: is this item from this world?"
            )
        return found[0]

    # One rule per MMHal question type (see exports._mmhal_question for how the world asks them).

    def _attribute(self, scene, question, parsed, labels) -> Verdict:
        subject = question.mentions[0]
        truth = {o.color for o in claims.matches(scene, subject, self.grid_size)}
        said = _said_about(parsed, subject.shape, "colors")
        return _compare_values(truth, said, "colour")

    def _adversarial(self, scene, question, parsed, labels) -> Verdict:
        shape = question.mentions[0].shape
        denied = any(m.negated and m.shape == shape for s in parsed for m in s.mentions)
        said = _said_about(parsed, shape, "colors")
        note = f"the {shape} is absent; the response " + ("says so" if denied else "does not say so")
        return Verdict(right=denied, complete=denied, wrong=bool(said), note=note)

    def _comparison(self, scene, question, parsed, labels) -> Verdict:
        a, b = question.mentions[0], question.mentions[1]
        x, y = self._asked_object(scene, a), self._asked_object(scene, b)
        if "larger" in question.tokens:
            return self._larger(parsed, a.shape, b.shape, x, y)
        same = x.color == y.color
        yes_no = _yes_no(parsed)
        said_a, said_b = _said_about(parsed, a.shape, "colors"), _said_about(parsed, b.shape, "colors")
        colors_right = x.color in said_a and y.color in said_b
        wrong = (
            (yes_no is not None and yes_no != same) or bool(said_a - {x.color}) or bool(said_b - {y.color})
        )
        right = (yes_no == same) or colors_right
        note = f"the colours are {'the same' if same else 'different'} ({x.color}, {y.color})"
        return Verdict(right=right, complete=colors_right, wrong=wrong, note=note)

    def _larger(self, parsed, shape_a, shape_b, x, y) -> Verdict:
        larger = shape_a if vocab.SIZES[x.size] > vocab.SIZES[y.size] else shape_b
        said = set()
        for s in parsed:
            for i, word, j in s.comparisons:
                first, second = s.mentions[i].shape, s.mentions[j].shape
                said.add(first if word == "larger" else second)
        if not said:  # a bare answer names one of the two: "The heart."
            named = {m.shape for s in parsed for m in s.mentions if not m.negated} & {shape_a, shape_b}
            said = named if len(named) == 1 else set()
        said &= {shape_a, shape_b}
        return Verdict(larger in said, larger in said, bool(said - {larger}), f"the {larger} is larger")

    def _counting(self, scene, question, parsed, labels) -> Verdict:
        shape = question.mentions[0].shape
        truth = scene.count(shape)
        said = set()
        for s in parsed:
            said |= {0 if m.negated else m.count for m in s.mentions if m.shape == shape}
            if not s.mentions:
                said |= s.loose_numbers
        said.discard(None)
        return _compare_values({truth}, said, "count")

    def _relation(self, scene, question, parsed, labels) -> Verdict:
        a, b = question.mentions[0], question.mentions[-1]
        x, y = self._asked_object(scene, a), self._asked_object(scene, b)
        truth = {rel for rel in INVERSE if claims.relation_holds(x, rel, y)}
        said = set()
        for s in parsed:
            for i, rels, j in s.relations:
                pair = (s.mentions[i].shape, s.mentions[j].shape)
                if pair == (a.shape, b.shape):
                    said |= rels
                elif pair == (b.shape, a.shape):
                    said |= {INVERSE[rel] for rel in rels}
            said |= s.loose_relations  # "Above and to the left." answers about a relative to b
        return _compare_values(truth, said, "relation")

    def _environment(self, scene, question, parsed, labels) -> Verdict:
        said = set()
        for s in parsed:
            said |= s.background_colors | (s.loose_colors if not s.mentions else set())
        return _compare_values({vocab.BACKGROUND_NAME}, said, "background colour")

    def _holistic(self, scene, question, parsed, labels) -> Verdict:
        present = scene.shapes()
        named = {
            m.shape
            for s, (label, _) in zip(parsed, labels)
            if label == "correct"
            for m in s.mentions
            if not m.negated
        }
        covered = named & present
        note = f"{len(covered)} of {len(present)} shapes described correctly"
        return Verdict(bool(covered), covered == present, False, note)

    def _other(self, scene, question, parsed, labels) -> Verdict:
        if not question.loose_positions:
            raise TetherError(f"no position in the question '{' '.join(question.tokens)}'")
        position = next(iter(question.loose_positions))
        truth = {o.shape for o in scene.objects if vocab.position_name(*o.cell, self.grid_size) == position}
        said = {
            m.shape for s in parsed for m in s.mentions if not m.negated and m.position in (None, position)
        }
        return _compare_values(truth, said, f"shape {texts.where(position)}")


def _said_about(parsed: list[Sentence], shape: str, attribute: str) -> set[str]:
    """Values stated for ``shape``: on its mentions, or loose in a sentence naming no shape ("Blue.")."""
    said = set()
    for s in parsed:
        said |= {v for m in s.mentions if m.shape == shape and not m.negated for v in getattr(m, attribute)}
        if not s.mentions and attribute == "colors":
            said |= s.loose_colors
    return said


def _yes_no(parsed: list[Sentence]) -> bool | None:
    """A leading yes/no, else "same" / "different" anywhere; None when the response says neither."""
    words = [t for s in parsed for t in s.tokens if t.isalnum()]
    if words and words[0] in ("yes", "no"):
        return words[0] == "yes"
    if "same" in words:
        return True
    if "different" in words:
        return False
    return None


def _compare_values(truth: set, said: set, what: str) -> Verdict:
    """Right if a true value is stated, complete if all are and no false one, wrong if a false one is."""
    right, wrong = bool(truth & said), bool(said - truth)
    expected = ", ".join(sorted(map(str, truth)))
    if not said:
        note = f"the {what} ({expected}) is not given"
    elif wrong:
        note = f"the {what} stated ({', '.join(sorted(map(str, said)))}) is not {expected}"
    else:
        note = f"the {what} ({', '.join(sorted(map(str, said)))}) is right"
    return Verdict(right=right, complete=truth <= said and not wrong, wrong=wrong, note=note)
