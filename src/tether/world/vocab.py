"""The world's vocabulary: shapes (with synonyms and plurals), colours, sizes, positions.

Objects in the world are shapes. Each shape has one canonical name (what the benchmarks count) and
synonyms that texts may use ("square" / "box" / "block"), so an evaluator must map free text back to
canonical names, as CHAIR does for COCO. ``extract_objects`` is that mapping.
"""

import re

from tether.data.negatives import HallucinationVocabulary

# canonical name -> synonyms (may be two words). The canonical name is listed first in CHAIR's
# synonyms.txt. "hollow circle" is a ring, not a circle: two-word names are matched before one-word ones.
SHAPE_SYNONYMS: dict[str, list[str]] = {
    "circle": ["ball", "disc"],
    "square": ["box", "block"],
    "triangle": ["wedge"],
    "star": [],
    "diamond": ["lozenge"],
    "cross": ["plus sign"],
    "heart": [],
    "ring": ["donut", "hollow circle"],
}
SHAPES: list[str] = list(SHAPE_SYNONYMS)

# Irregular plurals only; everything else takes "s".
_PLURAL_EXCEPTIONS = {"box": "boxes", "cross": "crosses"}

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 200),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "pink": (250, 140, 200),
}
BACKGROUND_NAME = "black"
BACKGROUND_RGB = (20, 20, 20)

# size name -> side of the object as a fraction of its grid cell
SIZES: dict[str, float] = {"small": 0.62, "large": 0.92}

# Relations stored in scene graphs; their inverses are only used in texts.
RELATIONS = ["left of", "above"]
INVERSE_RELATION = {"left of": "right of", "above": "below"}

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

_WORD_RE = re.compile(r"[a-z0-9<>]+|[.,?:]")


def plural(name: str) -> str:
    """Plural of a (possibly two-word) shape name: 'plus sign' -> 'plus signs', 'box' -> 'boxes'."""
    *head, last = name.split(" ")
    return " ".join([*head, _PLURAL_EXCEPTIONS.get(last, last + "s")])


def shape_names(shape: str) -> list[str]:
    """Every singular name of a canonical shape, canonical first."""
    return [shape, *SHAPE_SYNONYMS[shape]]


def _build_name_index() -> dict[tuple[str, ...], str]:
    index = {}
    for shape in SHAPES:
        for name in shape_names(shape):
            index[tuple(name.split())] = shape
            index[tuple(plural(name).split())] = shape
    return index


NAME_TO_SHAPE: dict[tuple[str, ...], str] = _build_name_index()
_LONGEST_NAME = max(len(key) for key in NAME_TO_SHAPE)


def split_words(text: str) -> list[str]:
    """Lowercase word tokens, with '. , ? :' as separate tokens (the tiny models' tokenisation)."""
    return _WORD_RE.findall(text.lower())


def extract_objects(text: str) -> list[str]:
    """Canonical shape names mentioned in ``text``, in order of mention (repeats kept).

    Handles synonyms, plurals and two-word names (longest match first, so 'hollow circles' -> 'ring').
    """
    words = [w for w in split_words(text) if w.isalnum()]
    found, i = [], 0
    while i < len(words):
        for length in range(min(_LONGEST_NAME, len(words) - i), 0, -1):
            shape = NAME_TO_SHAPE.get(tuple(words[i : i + length]))
            if shape is not None:
                found.append(shape)
                i += length
                break
        else:
            i += 1
    return found


def position_name(row: int, col: int, grid_size: int) -> str:
    """'top left', 'top', 'center', 'bottom right'... for a grid cell (3x3 names; larger grids bucket)."""
    vertical = _bucket(row, grid_size, ("top", "", "bottom"))
    horizontal = _bucket(col, grid_size, ("left", "", "right"))
    return " ".join(w for w in (vertical, horizontal) if w) or "center"


def _bucket(index: int, grid_size: int, names: tuple[str, str, str]) -> str:
    if grid_size == 1:
        return names[1]
    if grid_size == 2:
        return names[0] if index == 0 else names[2]
    third = grid_size / 3
    return names[min(2, int(index // third))]


POSITIONS = [
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
]


def hallucination_vocabulary():
    """The world's words as a rule rewriter's vocabulary (``tether.data.negatives``): shapes with their
    synonyms, colours, the two sizes, counts from two up, and each relation with its inverse."""
    return HallucinationVocabulary(
        objects={shape: list(SHAPE_SYNONYMS[shape]) for shape in SHAPES},
        colors=list(COLORS),
        sizes={"small": "large", "large": "small"},
        numbers=NUMBER_WORDS[2:],
        relations={"left of": "right of", "right of": "left of", "above": "below", "below": "above"},
    )
