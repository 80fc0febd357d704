"""Re-derive Object HalBench's built-in WordNet verdicts (``tether.eval.objhalbench``) from WordNet 3.0.

The official scorer lemmatises with NLTK's WordNet lemmatiser, whose data does not install from PyPI.
tether applies WordNet's noun rules with the list's words taken for WordNet's nouns, plus the verdicts this
script derives: the irregular plurals of the list's words (``WORDNET_IRREGULAR``) and every plural form of a
list word whose real WordNet lemma differs from what the rules alone give (``WORDNET_KEEPS``, ``WORDNET_ODD``).

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb wn
    python scripts/objhalbench_wordnet_tables.py wn/usr/share/wordnet shared/data/objhalbench/synonyms_refine.txt

Prints the three tables and exits 1 when they differ from the ones tether ships.
"""

import sys
from pathlib import Path

from tether.eval import objhalbench
from tether.eval.objhalbench import WORDNET_SUFFIX_RULES, ObjectVocabulary


def read_wordnet(folder: Path) -> tuple[set[str], dict[str, list[str]]]:
    """WordNet's noun lemmas (``index.noun``) and its noun exception list (``noun.exc``)."""
    nouns = {
        line.split(" ", 1)[0]
        for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines()
        if line and not line.startswith(" ")
    }
    exceptions = {}
    for line in (folder / "noun.exc").read_text(encoding="latin-1").splitlines():
        form, *bases = line.split()
        exceptions[form] = bases
    return nouns, exceptions


def lemma(word: str, nouns, exceptions: dict[str, list[str]]) -> str:
    """NLTK's ``WordNetLemmatizer().lemmatize(word)``: the shortest noun among the word and its exception
    bases, or else among the word and the results of the suffix rules."""
    if word in exceptions:
        forms = exceptions[word]
    else:
        forms = [word[: -len(old)] + new for old, new in WORDNET_SUFFIX_RULES if word.endswith(old)]
    found = [form for form in dict.fromkeys([word, *forms]) if form in nouns]
    return min(found, key=len) if found else word


def plural_forms(word: str) -> set[str]:
    """Every form the suffix rules turn into ``word``."""
    return {word + "s"} | {word[: -len(new)] + old for old, new in WORDNET_SUFFIX_RULES if new and word.endswith(new)}


def derive(wordnet: Path, synonyms: Path) -> tuple[dict, frozenset, dict]:
    nouns, exceptions = read_wordnet(wordnet)
    list_words = ObjectVocabulary.from_files(synonyms).nouns
    irregular = {f: b[0] for f, b in exceptions.items() if any(base in list_words for base in b)}
    candidates = set(list_words) | set(irregular) | {p for w in list_words for p in plural_forms(w)}
    keeps, odd = set(), {}
    for word in sorted(w for w in candidates if w == w.lower()):
        real = lemma(word, nouns, exceptions)
        by_rules = lemma(word, list_words, {f: [b] for f, b in irregular.items()})
        if real != by_rules and (real in list_words or by_rules in list_words):
            if real == word:
                keeps.add(word)
            else:
                odd[word] = real
    return irregular, frozenset(keeps), odd


def main(argv: list[str]) -> int:
    irregular, keeps, odd = derive(Path(argv[0]), Path(argv[1]))
    print("WORDNET_IRREGULAR =", dict(sorted(irregular.items())))
    print("WORDNET_KEEPS =", sorted(keeps))
    print("WORDNET_ODD =", odd)
    shipped = (objhalbench.WORDNET_IRREGULAR, objhalbench.WORDNET_KEEPS, objhalbench.WORDNET_ODD)
    same = shipped == (irregular, keeps, odd)
    print("the shipped tables are", "the same" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
