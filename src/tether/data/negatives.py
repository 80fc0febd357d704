"""Hallucinated negatives for HACL: a caption rewritten, in the same words and length, to say something false.

Four kinds of hallucination can be injected (each record keeps which ones were):

- ``object``: an object that is in the caption is replaced, in every mention, by an absent object, preferably
  one that often co-occurs with the objects present (the POPE-adversarial kind of error);
- ``attribute``: a colour becomes another colour, or a size word its opposite;
- ``count``: a number word (two and up) becomes another;
- ``position``: a spatial relation becomes its opposite (left/right, above/below, in front of/behind...).

``RuleRewriter`` needs no LLM: it is driven by a ``HallucinationVocabulary`` (COCO's 80 objects with CHAIR's
synonyms and POPE's co-occurrence counts for real captions; the synthetic world can supply its own shapes,
colours, sizes and relations). ``tether.data.negatives_llm.LLMRewriter`` does the same through a chat model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, parse_records, read_json, read_records, read_text_lines, write_jsonl
from tether.eval.concurrent import completed

KINDS = ("object", "attribute", "count", "position")

DEFAULT_COLORS = [
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "brown",
    "orange",
    "pink",
    "purple",
    "gray",
]
DEFAULT_SIZES = {"small": "large", "large": "small", "big": "small", "little": "big", "tall": "short"}
DEFAULT_NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
DEFAULT_RELATIONS = {
    "left": "right",
    "right": "left",
    "above": "below",
    "below": "above",
    "in front of": "behind",
    "behind": "in front of",
    "on top of": "underneath",
    "underneath": "on top of",
    "inside": "outside",
    "outside": "inside",
    "near": "far from",
}
IRREGULAR_PLURALS = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice"}
INVARIANT_PLURALS = {"sheep", "skis", "scissors", "people"}

_WORD_RE = re.compile(r"[A-Za-z]+")


def plural(name: str) -> str:
    """English plural of a (possibly multi-word) object name: 'wine glass' -> 'wine glasses'."""
    *head, last = name.split(" ")
    if last in IRREGULAR_PLURALS:
        last = IRREGULAR_PLURALS[last]
    elif last in INVARIANT_PLURALS:
        pass
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join([*head, last])


@dataclass
class HallucinationVocabulary:
    """What the rule rewriter may say: objects (canonical name -> synonyms), co-occurrence, attribute words."""

    objects: dict[str, list[str]]
    co_occurrence: dict[str, list[str]] = field(
        default_factory=dict
    )  # object -> objects seen with it, most first
    colors: list[str] = field(default_factory=lambda: list(DEFAULT_COLORS))
    sizes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SIZES))  # word -> opposite
    numbers: list[str] = field(default_factory=lambda: list(DEFAULT_NUMBERS))
    relations: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RELATIONS))  # phrase -> opposite

    def __post_init__(self):
        # (words of a singular or plural name) -> (canonical object, is_plural); first claim wins
        self.name_index: dict[tuple[str, ...], tuple[str, bool]] = {}
        for canonical, synonyms in self.objects.items():
            for name in [canonical, *synonyms]:
                self.name_index.setdefault(tuple(plural(name).split()), (canonical, True))
                self.name_index.setdefault(tuple(name.split()), (canonical, False))
        self.longest_name = max((len(k) for k in self.name_index), default=1)

    def mentions(self, text: str) -> list[Mention]:
        """Object mentions in ``text`` (longest names first, so 'wine glass' is not read as 'glass')."""
        words = [(m.group().lower(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]
        found, i = [], 0
        while i < len(words):
            for n in range(min(self.longest_name, len(words) - i), 0, -1):
                key = tuple(w for w, _, _ in words[i : i + n])
                if key in self.name_index:
                    canonical, is_plural = self.name_index[key]
                    found.append(Mention(canonical, is_plural, words[i][1], words[i + n - 1][2]))
                    i += n
                    break
            else:
                i += 1
        return found


@dataclass
class Mention:
    canonical: str
    is_plural: bool
    start: int
    end: int


def coco_vocabulary(synonyms_path, co_occurrence_path=None) -> HallucinationVocabulary:
    """COCO's 80 objects from CHAIR's ``synonyms.txt`` (first item per line canonical) and POPE's co-occurrence."""
    path = Path(synonyms_path)
    if not path.is_file():
        raise TetherError(f"{path}: synonyms file not found")
    objects: dict[str, list[str]] = {}
    for line in read_text_lines(path):
        names = [" ".join(n.split()) for n in line.split(",") if n.strip()]
        if names:
            canonical = names[0]
            objects[canonical] = list(dict.fromkeys(n for n in names[1:] if n != canonical))
    co_occurrence = {}
    if co_occurrence_path is not None:
        raw = read_json(co_occurrence_path)
        if not isinstance(raw, dict):
            raise DataError("co-occurrence file must map an object to a list of objects", co_occurrence_path)
        co_occurrence = {k: [o for o in v if o in objects] for k, v in raw.items() if k in objects}
    return HallucinationVocabulary(objects, co_occurrence)


@dataclass
class Rewrite:
    """A hallucinated caption and what was changed to make it."""

    negative: str
    kinds: list[str]
    changes: list[dict]  # {"kind", "from", "to"}


class RuleRewriter:
    """Vocabulary-driven rewriting: word substitutions only, so length and style stay the caption's own."""

    name = "rule"

    def __init__(self, vocabulary: HallucinationVocabulary, kinds: Sequence[str] = KINDS, max_kinds: int = 2):
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise TetherError(f"unknown hallucination kinds {sorted(unknown)}; choose from {list(KINDS)}")
        self.vocabulary = vocabulary
        self.kinds = list(kinds)
        self.max_kinds = max(1, max_kinds)

    def rewrite(self, caption: str, present: Iterable[str] | None = None, rng: random.Random | None = None):
        """A ``Rewrite`` of ``caption`` with one to ``max_kinds`` kinds injected, or None if none applies.

        ``present`` lists the objects truly in the image (canonical names); without it, the objects the
        caption mentions are taken as present.
        """
        rng = rng or random.Random(0)
        mentions = self.vocabulary.mentions(caption)
        present = set(present) if present is not None else {m.canonical for m in mentions}
        present |= {m.canonical for m in mentions}
        finders = {
            "object": lambda: self._object_edits(mentions, present, rng),
            "attribute": lambda: self._attribute_edits(caption, rng),
            "count": lambda: self._count_edits(caption, rng),
            "position": lambda: self._position_edits(caption, rng),
        }
        options = {kind: finders[kind]() for kind in self.kinds}
        applicable = [k for k, edits in options.items() if edits]
        if not applicable:
            return None
        chosen = rng.sample(applicable, rng.randint(1, min(self.max_kinds, len(applicable))))
        edits, taken = [], []
        for kind in sorted(chosen, key=KINDS.index):
            kind_edits = [e for e in options[kind] if not any(_overlaps(e, t) for t in taken)]
            if kind_edits:
                edits.extend(kind_edits)
                taken.extend(kind_edits)
        text = caption
        for start, end, replacement, _kind in sorted(edits, reverse=True):
            text = text[:start] + _match_case(caption[start:end], replacement) + text[end:]
            text = _fix_article(text, start)
        changes, seen = [], set()
        for start, end, replacement, kind in sorted(edits):
            key = (kind, caption[start:end].lower(), replacement)
            if key not in seen:
                seen.add(key)
                changes.append({"kind": kind, "from": caption[start:end].lower(), "to": replacement})
        kinds = [k for k in KINDS if any(c["kind"] == k for c in changes)]
        return Rewrite(text, kinds, changes)

    # ---- edits: (start, end, replacement, kind) ------------------------------------------------------

    def _object_edits(self, mentions: list[Mention], present: set[str], rng: random.Random):
        if not mentions:
            return []
        target = rng.choice(sorted({m.canonical for m in mentions}))
        absent = self._absent_object(present, target, rng)
        if absent is None:
            return []
        return [
            (m.start, m.end, plural(absent) if m.is_plural else absent, "object")
            for m in mentions
            if m.canonical == target
        ]

    def _absent_object(self, present: set[str], target: str, rng: random.Random) -> str | None:
        # prefer objects that co-occur with the one replaced (then with any present one): hard negatives
        for anchor in [target, *sorted(present - {target})]:
            candidates = [o for o in self.vocabulary.co_occurrence.get(anchor, []) if o not in present]
            if candidates:
                return rng.choice(candidates[:5])
        others = sorted(set(self.vocabulary.objects) - present)
        return rng.choice(others) if others else None

    def _attribute_edits(self, caption: str, rng: random.Random):
        vocab = self.vocabulary
        options = [
            (m.start(), m.end(), rng.choice([c for c in vocab.colors if c != m.group().lower()]))
            for m in _find_words(caption, vocab.colors)
        ]
        options += [
            (m.start(), m.end(), vocab.sizes[m.group().lower()]) for m in _find_words(caption, vocab.sizes)
        ]
        return [(*rng.choice(options), "attribute")] if options else []

    def _count_edits(self, caption: str, rng: random.Random):
        numbers = self.vocabulary.numbers
        options = [
            (m.start(), m.end(), rng.choice([n for n in numbers if n != m.group().lower()]))
            for m in _find_words(caption, numbers)
        ]
        return [(*rng.choice(options), "count")] if options else []

    def _position_edits(self, caption: str, rng: random.Random):
        relations = self.vocabulary.relations
        options = [
            (m.start(), m.end(), relations[m.group().lower()]) for m in _find_words(caption, relations)
        ]
        return [(*rng.choice(options), "position")] if options else []


def _find_words(text: str, phrases: Iterable[str]) -> list[re.Match]:
    """Whole-word, case-insensitive matches of any phrase, longest first, non-overlapping."""
    phrases = sorted(set(phrases), key=len, reverse=True)
    if not phrases:
        return []
    pattern = r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b"
    return list(re.finditer(pattern, text, flags=re.IGNORECASE))


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _match_case(original: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if original[:1].isupper() else replacement


def _fix_article(text: str, start: int) -> str:
    """'a' / 'an' right before position ``start`` agrees with the word now there."""
    m = re.search(r"\b(a|an|A|An)(\s+)$", text[:start])
    if not m:
        return text
    article = "an" if text[start : start + 1].lower() in "aeiou" else "a"
    article = article.capitalize() if m.group(1)[0].isupper() else article
    return text[: m.start(1)] + article + text[m.end(1) :]


# ---- records ---------------------------------------------------------------------------------------------


@dataclass
class CaptionRecord:
    image: str | None
    caption: str
    prompt: str | None = None
    objects: list[str] | None = None  # objects truly present, canonical names, when known


def load_caption_records(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None, streaming: bool = False
) -> list[CaptionRecord]:
    """Captions to rewrite: SFT-style records (``response``/``answer``) or ``{"image"|"image_id", "caption"}``."""
    return parse_records(path, _caption_record, skip_invalid=skip_invalid, skips=skips, streaming=streaming)


def _caption_record(raw: dict, path, line) -> CaptionRecord:
    caption = next((raw[k] for k in ("caption", "response", "answer") if k in raw), None)
    if not isinstance(caption, str) or not caption.strip():
        raise DataError("record needs a non-empty 'caption' (or 'response' / 'answer')", path, line)
    image = raw.get("image", raw.get("image_id"))
    if image is not None and not isinstance(image, (str, int)):
        raise DataError("field 'image' must be a file name (or 'image_id' a number)", path, line)
    objects = raw.get("objects")
    if objects is not None and not (isinstance(objects, list) and all(isinstance(o, str) for o in objects)):
        raise DataError("field 'objects' must be a list of object names", path, line)
    prompt = raw.get("prompt", raw.get("question"))
    if prompt is not None and not isinstance(prompt, str):
        raise DataError("field 'prompt' (or 'question') must be text", path, line)
    return CaptionRecord(None if image is None else str(image), caption, prompt, objects)


def negative_record(record: CaptionRecord, rewrite: Rewrite, rewriter: str) -> dict:
    """One line of a negatives file (what ``tether train hacl`` and ``tether analyze gap`` read)."""
    out = {"image": record.image}
    if record.prompt is not None:
        out["prompt"] = record.prompt
    out.update(
        caption=record.caption,
        negative=rewrite.negative,
        kinds=rewrite.kinds,
        changes=rewrite.changes,
        rewriter=rewriter,
    )
    return out


def make_negatives(
    records: Sequence[CaptionRecord],
    rewriter,
    *,
    seed: int = 0,
    skip_invalid: bool = True,
    skips: SkipLog | None = None,
    concurrency: int = 1,
) -> list[dict]:
    """Rewrite every record; records nothing can be rewritten in (or invalid LLM replies) are skipped and logged.

    Each record draws from its own seeded generator, so a record's negative does not depend on the others,
    nor on the order in which ``concurrency`` > 1 rewrites (an LLM rewriter's requests) finish.
    """
    def rewrite_one(i: int):
        rng = random.Random(f"{seed}:{i}")
        try:
            return records[i], rewriter.rewrite(records[i].caption, records[i].objects, rng), None
        except DataError as e:
            if not skip_invalid:
                raise
            return records[i], None, f"record {i + 1}: {e}"

    done = dict(completed(rewrite_one, range(len(records)), concurrency))
    out = []
    for i in range(len(records)):
        record, rewrite, reason = done[i]
        if rewrite is None:
            if skips is not None:
                skips.add(reason or f"record {i + 1}: no object, attribute, count or position to rewrite")
            continue
        out.append(negative_record(record, rewrite, rewriter.name))
    return out


@dataclass
class NegativePair:
    image: str | None
    caption: str
    negative: str
    kinds: list[str]


def load_negatives(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None, streaming: bool = False
) -> list[NegativePair]:
    """Read a negatives file written by ``tether data negatives`` (or any source with the same fields)."""
    out = []
    for line, raw in read_records(path, skip_invalid=skip_invalid, skips=skips, streaming=streaming):
        caption, negative, kinds = raw.get("caption"), raw.get("negative"), raw.get("kinds", [])
        problem = None
        if not isinstance(caption, str) or not caption.strip():
            problem = "field 'caption' must be a non-empty string"
        elif not isinstance(negative, str) or not negative.strip():
            problem = "field 'negative' must be a non-empty string"
        elif not isinstance(kinds, list) or not all(isinstance(k, str) and k in KINDS for k in kinds):
            problem = f"field 'kinds' must list some of {list(KINDS)}"
        elif raw.get("image") is not None and not isinstance(raw["image"], str | int):
            problem = "field 'image' must be a file name"
        if problem:
            if not skip_invalid:
                raise DataError(problem, path, line)
            if skips is not None:
                skips.add(str(DataError(problem, path, line)))
            continue
        image = raw.get("image")
        out.append(NegativePair(None if image is None else str(image), caption, negative, kinds))
    return out


def write_negatives(path: Path, rows: Sequence[dict]) -> None:
    """Write a negatives JSONL atomically."""
    write_jsonl(path, rows)
