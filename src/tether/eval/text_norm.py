"""Offline word normalisation for caption scorers (CHAIR, AMBER generative).

The reference scorers use NLTK's tokenizer + POS tagger + WordNet lemmatizer (OPERA, AMBER) or
pattern.en's singularize (the original CHAIR). Neither's data installs offline, so tether uses a
documented rule normaliser instead: a regex tokenizer close to NLTK's for plain English, and a
vocabulary-aware singulariser: a word already in the scorer's vocabulary stays as it is ("bus", "glass"
are not turned into "bu", "glas"), irregular plurals map through a table, and the suffix rules below
are tried in order, preferring a result that is in the vocabulary. Only vocabulary words matter to the
scorers, so the deviation from the reference is confined to words the two normalisers treat differently
(measured in docs/evaluation.md).
"""

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")

IRREGULAR_PLURALS = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "mice": "mouse",
    "geese": "goose",
    "feet": "foot",
    "teeth": "tooth",
    "knives": "knife",
    "wives": "wife",
    "leaves": "leaf",
    "loaves": "loaf",
    "shelves": "shelf",
    "halves": "half",
    "calves": "calf",
    "wolves": "wolf",
    "scarves": "scarf",
    "oxen": "ox",
    "cacti": "cactus",
    "policemen": "policeman",
    "firemen": "fireman",
    "gentlemen": "gentleman",
    "servicemen": "serviceman",
    "grandchildren": "grandchild",
    "sheep": "sheep",
    "deer": "deer",
    "fish": "fish",
    "species": "species",
    "series": "series",
}

# (suffix, replacement), tried in order; "es" forms before the plain "s".
_SUFFIX_RULES = (
    ("ies", "y"),
    ("ves", "f"),
    ("ves", "fe"),
    ("sses", "ss"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("xes", "x"),
    ("zes", "z"),
    ("oes", "o"),
    ("ses", "s"),
    ("s", ""),
)


def tokenize(text: str) -> list[str]:
    """Lower-case word and punctuation tokens ("child's" stays one token, "t-shirt" too)."""
    return _TOKEN.findall(text.lower())


def singularize(word: str, vocabulary=frozenset()) -> str:
    """Singular of ``word``, preferring forms in ``vocabulary``; words in it are returned unchanged."""
    if word in vocabulary:
        return word
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word.endswith("'s"):
        word = word[:-2]
        if word in vocabulary:
            return word
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    candidates = [
        word[: -len(suffix)] + replacement for suffix, replacement in _SUFFIX_RULES if word.endswith(suffix)
    ]
    for candidate in candidates:
        if candidate in vocabulary:
            return candidate
    return candidates[0] if candidates else word
