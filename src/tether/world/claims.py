"""Claims that a sentence about a world image makes, and whether the scene graph makes them true.

The grammar is small and explicit (docs/world_judge.md lists it). A sentence is read as:

- shape mentions (any name ``vocab.NAME_TO_SHAPE`` knows: synonyms, plurals, two-word names), each a
  noun phrase ``[no|not ...] [number | a | an | the] [size] [colour] shape`` with an optional
  predicate ``is|are [size|colour ...]`` and an optional position phrase ``in|at|on the <position>``;
- "it" for the last shape mentioned in an earlier sentence of the same text;
- relations between two consecutive mentions (``left of``, ``right of``, ``above``, ``below``, ``under``,
  ``beneath``), comparisons ``X is larger|bigger|smaller than Y``;
- the background colour (colour words not attached to a shape in a sentence that says "background");
- the number of shapes (``three shapes``, ``2 objects``).

Words outside the grammar are ignored; a sentence with a negation the grammar cannot scope (``the star
is not red``) makes no checkable claim, so it is never called correct or hallucinated by guesswork.
"""

from dataclasses import dataclass, field

from tether.world import texts, vocab
from tether.world.scene import Scene, SceneObject

COLOR_WORDS = set(vocab.COLORS) | {vocab.BACKGROUND_NAME}
SIZE_WORDS = set(vocab.SIZES)
NEGATIONS = {"no", "not", "t", "never", "without"}  # "t" is what the tokeniser leaves of "isn't"
# Words allowed between a negation and the noun phrase it negates: "I do not see any red boxes".
NEGATION_FILLER = {"a", "an", "any", "see", "seen", "there", "is", "are", "single"}
RELATION_WORDS = {"above": "above", "below": "below", "under": "below", "beneath": "below"}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
COMPARATIVES = {"larger": "larger", "bigger": "larger", "smaller": "smaller"}
POSITION_ALIASES = {"middle": "center", "centre": "center"}
IMAGE_WORDS = {"image", "picture", "photo", "frame", "scene"}
COUNTABLE_WORDS = {"shape", "shapes", "object", "objects"}
_LONGEST_NAME = max(len(key) for key in vocab.NAME_TO_SHAPE)


@dataclass
class Mention:
    """One noun phrase naming a shape, with everything the sentence says about it."""

    shape: str
    start: int  # token span of the shape name
    end: int
    colors: set[str] = field(default_factory=set)
    sizes: set[str] = field(default_factory=set)
    position: str | None = None
    count: int | None = None
    negated: bool = False
    pronoun: bool = False  # "it": only a claim when the sentence adds something
    added: bool = False  # the sentence said something about a pronoun

    def describe(self) -> str:
        words = [*sorted(self.sizes), *sorted(self.colors), self.shape]
        text = " ".join(words)
        return f"{text} {texts.where(self.position)}" if self.position else text


@dataclass
class Sentence:
    """What one sentence claims, in parsed form."""

    tokens: list[str]
    mentions: list[Mention] = field(default_factory=list)
    relations: list[tuple[int, set[str], int]] = field(default_factory=list)  # mention indices
    comparisons: list[tuple[int, str, int]] = field(default_factory=list)  # (i, "larger"|"smaller", j)
    background_colors: set[str] = field(default_factory=set)
    total_count: int | None = None
    loose_colors: set[str] = field(default_factory=set)  # colour words attached to nothing
    loose_numbers: set[int] = field(default_factory=set)
    loose_relations: set[str] = field(default_factory=set)  # relation words between no two mentions
    loose_positions: set[str] = field(default_factory=set)
    unscoped_negation: bool = False


def parse_sentence(text: str, antecedent: Mention | None = None) -> Sentence:
    """Read one sentence with the grammar above; ``antecedent`` is what "it" refers to."""
    tokens = vocab.split_words(text)
    used = [False] * len(tokens)
    sentence = Sentence(tokens)
    for start, end, shape in _shape_names(tokens):
        sentence.mentions.append(_noun_phrase(tokens, used, start, end, shape))
    if antecedent is not None:
        for k, token in enumerate(tokens):
            if token == "it" and not used[k]:
                used[k] = True
                copy = Mention(antecedent.shape, k, k + 1, set(antecedent.colors), set(antecedent.sizes))
                copy.position, copy.pronoun = antecedent.position, True
                sentence.mentions.append(copy)
        sentence.mentions.sort(key=lambda m: m.start)
    for mention in sentence.mentions:
        _predicate(tokens, used, mention)
    _positions(tokens, used, sentence)
    _relations(tokens, used, sentence)
    _comparisons(tokens, used, sentence)
    _loose_words(tokens, used, sentence)
    return sentence


def _shape_names(tokens: list[str]):
    """(start, end, canonical shape) of every shape name, longest match first."""
    k = 0
    while k < len(tokens):
        for length in range(min(_LONGEST_NAME, len(tokens) - k), 0, -1):
            shape = vocab.NAME_TO_SHAPE.get(tuple(tokens[k : k + length]))
            if shape is not None:
                yield k, k + length, shape
                k += length
                break
        else:
            k += 1


def _number(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    return vocab.NUMBER_WORDS.index(token) if token in vocab.NUMBER_WORDS else None


def _noun_phrase(tokens, used, start: int, end: int, shape: str) -> Mention:
    """The shape name plus the size/colour/number words before it and a negation that scopes over it."""
    mention = Mention(shape, start, end)
    for k in range(start, end):
        used[k] = True
    k = start - 1
    while k >= 0 and not used[k] and (tokens[k] in COLOR_WORDS or tokens[k] in SIZE_WORDS):
        (mention.colors if tokens[k] in COLOR_WORDS else mention.sizes).add(tokens[k])
        used[k] = True
        k -= 1
    if k >= 0 and not used[k] and _number(tokens[k]) is not None:
        mention.count = _number(tokens[k])
        used[k] = True
        k -= 1
    while k >= 0 and not used[k] and tokens[k] in NEGATION_FILLER:
        k -= 1
    if k >= 0 and not used[k] and tokens[k] in NEGATIONS:
        mention.negated = True
        used[k] = True
    return mention


def _predicate(tokens, used, mention: Mention) -> None:
    """``X is blue``, ``X are small and red``: attributes after a copula belong to X."""
    k = mention.end
    if k >= len(tokens) or tokens[k] not in ("is", "are"):
        return
    k += 1
    while k < len(tokens) and not used[k] and tokens[k] in COLOR_WORDS | SIZE_WORDS | {"and", "both"}:
        if tokens[k] in COLOR_WORDS | SIZE_WORDS:
            (mention.colors if tokens[k] in COLOR_WORDS else mention.sizes).add(tokens[k])
            mention.added = True
            used[k] = True
        k += 1


def _position_at(tokens, k: int) -> tuple[str, int] | None:
    """``in|at|on the <position>`` starting at token k: (position name, tokens used), or None."""
    if k + 2 >= len(tokens) or tokens[k] not in ("in", "at", "on") or tokens[k + 1] != "the":
        return None
    for length in (2, 1):
        words = tokens[k + 2 : k + 2 + length]
        name = " ".join(POSITION_ALIASES.get(w, w) for w in words)
        if len(words) == length and name in vocab.POSITIONS:
            after = k + 2 + length
            # "on the left of the star" is a relation; "at the top of the image" is still a position.
            if (
                after < len(tokens)
                and tokens[after] == "of"
                and not set(tokens[after + 1 : after + 3]) & IMAGE_WORDS
            ):
                return None
            return name, 2 + length
    return None


def _positions(tokens, used, sentence: Sentence) -> None:
    """Attach each position phrase to the nearest mention before it, else the first one after it."""
    k = 0
    while k < len(tokens):
        found = None if used[k] else _position_at(tokens, k)
        if found is None:
            k += 1
            continue
        name, length = found
        for j in range(k, k + length):
            used[j] = True
        before = [m for m in sentence.mentions if m.end <= k]
        after = [m for m in sentence.mentions if m.start >= k + length]
        target = before[-1] if before else (after[0] if after else None)
        if target is None:
            sentence.loose_positions.add(name)
        else:
            target.position = name
            target.added = True
        k += length


def _relation_words(tokens, used, lo: int, hi: int) -> set[str]:
    rels = set()
    for k in range(lo, hi):
        if used[k]:
            continue
        if tokens[k] in ("left", "right") and k + 1 < hi and tokens[k + 1] == "of":
            rels.add(f"{tokens[k]} of")
            used[k] = used[k + 1] = True
        elif tokens[k] in RELATION_WORDS:
            rels.add(RELATION_WORDS[tokens[k]])
            used[k] = True
    return rels


def _relations(tokens, used, sentence: Sentence) -> None:
    mentions = sentence.mentions
    for n in range(len(mentions) - 1):
        rels = _relation_words(tokens, used, mentions[n].end, mentions[n + 1].start)
        if rels:
            sentence.relations.append((n, rels, n + 1))
            mentions[n].added = mentions[n + 1].added = True
    sentence.loose_relations |= _relation_words(tokens, used, 0, len(tokens))


def _comparisons(tokens, used, sentence: Sentence) -> None:
    mentions = sentence.mentions
    for n in range(len(mentions) - 1):
        between = range(mentions[n].end, mentions[n + 1].start)
        for k in between:
            if tokens[k] in COMPARATIVES and k + 1 in between and tokens[k + 1] == "than":
                sentence.comparisons.append((n, COMPARATIVES[tokens[k]], n + 1))
                used[k] = used[k + 1] = True
                mentions[n].added = mentions[n + 1].added = True


def _loose_words(tokens, used, sentence: Sentence) -> None:
    """Colours, numbers and negations that no mention took; "No" opening an answer is not a negation."""
    loose_colors = set()
    for k, token in enumerate(tokens):
        if used[k]:
            continue
        if token in COLOR_WORDS:
            loose_colors.add(token)
        elif token in COUNTABLE_WORDS and k > 0 and _number(tokens[k - 1]) is not None:
            sentence.total_count = _number(tokens[k - 1])
            used[k - 1] = True
        elif _number(token) is not None and not (k + 1 < len(tokens) and tokens[k + 1] in COUNTABLE_WORDS):
            sentence.loose_numbers.add(_number(token))
        elif token in NEGATIONS and k > 0:
            sentence.unscoped_negation = True
    if "background" in tokens:
        sentence.background_colors = loose_colors
    else:
        sentence.loose_colors = loose_colors


# ---------------------------------------------------------------- checking against the scene


def matches(scene: Scene, mention: Mention, grid_size: int) -> list[SceneObject]:
    """The objects of the scene that fit every attribute the mention states."""
    return [
        o
        for o in scene.objects
        if o.shape == mention.shape
        and mention.colors <= {o.color}
        and mention.sizes <= {o.size}
        and (mention.position is None or vocab.position_name(*o.cell, grid_size) == mention.position)
    ]


def relation_holds(a: SceneObject, rel: str, b: SceneObject) -> bool:
    """Relations from grid cells, as ``scene.derive_relations`` does."""
    return {
        "left of": a.cell[1] < b.cell[1],
        "right of": a.cell[1] > b.cell[1],
        "above": a.cell[0] < b.cell[0],
        "below": a.cell[0] > b.cell[0],
    }[rel]


def check_sentence(sentence: Sentence, scene: Scene, grid_size: int) -> list[tuple[bool, str]]:
    """(true?, reason) for every checkable claim of the sentence; empty when it makes none."""
    if sentence.unscoped_negation:
        return []
    claims = []
    for m in sentence.mentions:
        if m.pronoun and not m.added:
            continue
        found = matches(scene, m, grid_size)
        if m.negated:
            claims.append((not found, f"there is a {m.describe()}" if found else f"no {m.describe()}"))
        elif scene.count(m.shape) == 0:
            claims.append((False, f"there is no {m.shape} in the scene"))
        elif m.count is not None:
            ok = len(found) == m.count
            claims.append(
                (ok, f"{len(found)} {m.describe()} in the scene, {'as' if ok else 'not'} {m.count}")
            )
        else:
            claims.append((bool(found), f"{'a' if found else 'no'} {m.describe()} in the scene"))
    for i, rels, j in sentence.relations:
        a, b = sentence.mentions[i], sentence.mentions[j]
        if a.negated or b.negated:
            continue
        ok = any(
            all(relation_holds(x, rel, y) for rel in rels)
            for x in matches(scene, a, grid_size)
            for y in matches(scene, b, grid_size)
        )
        said = " and ".join(sorted(rels))
        claims.append((ok, f"the {a.shape} is {'' if ok else 'not '}{said} the {b.shape}"))
    for i, word, j in sentence.comparisons:
        a, b = sentence.mentions[i], sentence.mentions[j]
        sign = 1 if word == "larger" else -1
        ok = any(
            sign * (vocab.SIZES[x.size] - vocab.SIZES[y.size]) > 0
            for x in matches(scene, a, grid_size)
            for y in matches(scene, b, grid_size)
        )
        claims.append((ok, f"the {a.shape} is {'' if ok else 'not '}{word} than the {b.shape}"))
    if sentence.background_colors:
        ok = sentence.background_colors == {vocab.BACKGROUND_NAME}
        claims.append((ok, f"the background is {vocab.BACKGROUND_NAME}"))
    if sentence.total_count is not None:
        ok = sentence.total_count == len(scene.objects)
        claims.append((ok, f"the scene has {len(scene.objects)} shapes"))
    return claims


def sentence_label(claims: list[tuple[bool, str]]) -> tuple[str, str]:
    """SHR label and reason: any false claim -> hallucination; all true -> correct; none -> cannot judge."""
    if not claims:
        return "cannot judge", "no claim the scene graph can check"
    false = [reason for ok, reason in claims if not ok]
    if false:
        return "hallucination", "; ".join(false)
    return "correct", "; ".join(reason for _, reason in claims)


def parse_text(sentences: list[str]) -> list[Sentence]:
    """Parse sentences in order, resolving "it" to the last positive mention of an earlier sentence."""
    parsed, antecedent = [], None
    for text in sentences:
        sentence = parse_sentence(text, antecedent)
        positive = [m for m in sentence.mentions if not m.negated]
        if positive:
            antecedent = positive[-1]
        parsed.append(sentence)
    return parsed
