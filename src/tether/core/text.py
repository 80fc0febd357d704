"""Text normalisation shared by scorers, judges and pipelines: sentence splitting, tokenising, singularising.

``split_sentences`` is HA-DPO's segmentation (SHR's official one), which the pair pipeline and the world's
judge use too, so that every sentence-level label refers to the same sentences.

Word normalisation for caption scorers (CHAIR, AMBER generative) follows the reference pipelines.

Tokenisation is NLTK's ``word_tokenize`` (Punkt sentence splitting, then NLTK's Treebank-style word
tokenizer), which the reference scorers call: "men's" becomes "men" + "'s", "forks/spoons" stays one
token. Punkt runs untrained here (its trained parameters are NLTK data, which does not install from
PyPI); on captions the only difference is a period after an abbreviation ("Mr.") ending a sentence.

The original CHAIR singularises every token with pattern.en's ``singularize`` (Pattern 2.6). No
installable package provides it on Python 3 (``Pattern`` on PyPI is another project, ``pattern3`` does
not import), so ``pattern_singularize`` re-implements its rules: the same lists and suffix rules, in the
same order, with pattern's own errors ("bus" -> "bu", "ties" -> "ty", "glasses" -> "glass"), since the
published CHAIR numbers contain them. ``corrected_singularize`` fixes those errors for a given vocabulary.
"""

import re
from functools import lru_cache


@lru_cache(maxsize=1)
def _tokenizers():
    # NLTK is imported on first use: importing it takes most of a second (it pulls in its whole corpus and
    # metrics machinery), and every benchmark module imports this one, so `tether --help` would pay it.
    from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer

    return PunktSentenceTokenizer(), NLTKWordTokenizer()


def tokenize(text: str, lower: bool = True) -> list[str]:
    """NLTK ``word_tokenize`` of the text, lower-cased first as CHAIR does (AMBER does not)."""
    if lower:
        text = text.lower()
    sentences, words = _tokenizers()
    return [token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence)]


# ---- pattern.en's singulariser --------------------------------------------------------------------
# The tables below are pattern.en's, as its code uses them. Three of its lists miss a comma, so two
# names run together ("wildebeestcarp", "watercheese", "zombiebogie"); two "ie" entries start with a
# literal "^" that never matches. Both quirks change outputs ("carp", "ties") and are kept.

_PREPOSITIONS = frozenset(
    "about before during of till above behind except off to across below for on under after beneath "
    "from onto until among beside in out unto around besides into over upon at between near since with "
    "athwart betwixt".split()
)
_UNINFLECTED = frozenset(
    "bison debris headquarters pincers trout bream diabetes herpes pliers tuna breeches djinn high-jinks "
    "proceedings whiting britches eland homework rabies wildebeestcarp elk innings salmon chassis "
    "flounder jackanapes scissors christmas gallows mackerel series clippers georgia measles shears cod "
    "graffiti mews species contretemps mumps swine corps news swiss".split()
)
_UNCOUNTABLE = frozenset(
    "advice equipment happiness luggage news software bread fruit information mathematics progress "
    "understanding butter furniture ketchup mayonnaise research watercheese garbage knowledge meat rice "
    "electricity gravel love mustard sand".split()
)
_IE_WORDS = frozenset(
    "alergie cutie hoagie newbie softie veggie auntie doggie hottie nightie sortie weenie beanie eyrie "
    "indie oldie stoolie yuppie birdie freebie junkie ^pie sweetie zombiebogie goonie laddie pixie "
    "techie bombie groupie laramie quickie ^tie collie hankie lingerie reverie toughie cookie hippie "
    "meanie rookie valkyrie".split()
)
_IRREGULAR = {
    "atlantes": "atlas",
    "atlases": "atlas",
    "axes": "axe",
    "beeves": "beef",
    "brethren": "brother",
    "children": "child",
    "corpora": "corpus",
    "corpuses": "corpus",
    "ephemerides": "ephemeris",
    "feet": "foot",
    "ganglia": "ganglion",
    "geese": "goose",
    "genera": "genus",
    "genii": "genie",
    "graffiti": "graffito",
    "helves": "helve",
    "kine": "cow",
    "leaves": "leaf",
    "loaves": "loaf",
    "men": "man",
    "mongooses": "mongoose",
    "monies": "money",
    "moves": "move",
    "mythoi": "mythos",
    "numena": "numen",
    "occipita": "occiput",
    "octopodes": "octopus",
    "opera": "opus",
    "opuses": "opus",
    "our": "my",
    "oxen": "ox",
    "penes": "penis",
    "penises": "penis",
    "people": "person",
    "sexes": "sex",
    "soliloquies": "soliloquy",
    "teeth": "tooth",
    "testes": "testis",
    "trilbys": "trilby",
    "turves": "turf",
    "zoa": "zoon",
}
# (pattern, replacement), first match wins. Most are case-insensitive in pattern; the "-ves" rules
# without a flag are case-sensitive there, which only matters for upper-case input.
_I = re.IGNORECASE
_RULES = [
    (re.compile(p, flags), r)
    for p, r, flags in (
        (r"(.)ae$", r"\1a", _I),
        (r"(.)itis$", r"\1itis", _I),
        (r"(.)eaux$", r"\1eau", _I),
        (r"(quiz)zes$", r"\1", _I),
        (r"(matr)ices$", r"\1ix", _I),
        (r"(ap|vert|ind)ices$", r"\1ex", _I),
        (r"^(ox)en", r"\1", _I),
        (r"(alias|status)es$", r"\1", _I),
        (r"([octop|vir])i$", r"\1us", _I),  # a character class in pattern, not two words
        (r"(cris|ax|test)es$", r"\1is", _I),
        (r"(shoe)s$", r"\1", _I),
        (r"(o)es$", r"\1", _I),
        (r"(bus)es$", r"\1", _I),
        (r"([m|l])ice$", r"\1ouse", _I),
        (r"(x|ch|ss|sh)es$", r"\1", _I),
        (r"(m)ovies$", r"\1ovie", _I),
        (r"(.)ombies$", r"\1ombie", _I),
        (r"(s)eries$", r"\1eries", _I),
        (r"([^aeiouy]|qu)ies$", r"\1y", _I),
        (r"([aeo]l)ves$", r"\1f", 0),
        (r"([^d]ea)ves$", r"\1f", 0),
        (r"arves$", "arf", 0),
        (r"erves$", "erve", 0),
        (r"([nlw]i)ves$", r"\1fe", 0),
        (r"([lr])ves$", r"\1f", _I),
        (r"([aeo])ves$", r"\1ve", 0),
        (r"(sive)s$", r"\1", _I),
        (r"(tive)s$", r"\1", _I),
        (r"(hive)s$", r"\1", _I),
        (r"([^f])ves$", r"\1fe", _I),
        (r"(^analy)ses$", r"\1sis", _I),
        (r"((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", r"\1\2sis", _I),
        (r"(.)opses$", r"\1opsis", _I),
        (r"(.)yses$", r"\1ysis", _I),
        (r"(h|d|r|o|n|b|cl|p)oses$", r"\1ose", _I),
        (r"(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", r"\1ose", _I),
        (r"(.)oses$", r"\1osis", _I),
        (r"([ti])a$", r"\1um", _I),
        (r"(n)ews$", r"\1ews", _I),
        (r"s$", "", _I),
    )
]


@lru_cache(maxsize=65536)
def pattern_singularize(word: str) -> str:
    """pattern.en's ``singularize(word)`` (Pattern 2.6 rules), errors included: "bus" -> "bu"."""
    if "-" in word:
        head, *rest = word.split("-")
        if rest and rest[0] in _PREPOSITIONS:  # "mothers-in-law" -> "mother-in-law"
            return "-".join([pattern_singularize(head), *rest])
    if word.endswith("'"):  # "dogs'" -> "dog's"
        return pattern_singularize(word[:-1]) + "'s"
    lower = word.lower()
    # pattern tests whether a listed word *ends with* the input, so "ears" (from "shears") stays.
    if any(listed.endswith(lower) for listed in _UNINFLECTED | _UNCOUNTABLE):
        return word
    if any(lower.endswith(ie_word + "s") for ie_word in _IE_WORDS):
        return lower
    for plural, singular in _IRREGULAR.items():
        if lower.endswith(plural):
            return re.sub(f"(?i){plural}$", singular, word)
    for rule, replacement in _RULES:
        match = rule.search(word)
        if match:
            # pattern drops references to groups that did not take part in the match.
            for k, group in enumerate(match.groups(), start=1):
                if group is None:
                    replacement = replacement.replace(f"\\{k}", "")
            return rule.sub(replacement, word)
    return word


def corrected_singularize(word: str, vocabulary=frozenset()) -> str:
    """pattern's singular with its errors fixed for ``vocabulary``: a word in it stays as it is ("bus"),
    and a plural whose pattern singular misses it falls back to the plain -s/-es/-ies forms ("ties")."""
    if word in vocabulary:
        return word
    singular = pattern_singularize(word)
    if singular in vocabulary or not word.endswith("s"):
        return singular
    for candidate in (word[:-1], word[:-2], word[:-3] + "y"):
        if candidate in vocabulary:
            return candidate
    return singular


def split_sentences(description: str) -> list[str]:
    """HA-DPO's segmentation: split on '.', strip, drop empty and repeated (contained) sentences."""
    kept: list[str] = []
    for piece in description.split("."):
        sentence = piece.strip()
        if sentence and not any(sentence in earlier for earlier in kept):
            kept.append(sentence)
    return kept
