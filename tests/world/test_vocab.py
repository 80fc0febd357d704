from tether.world import vocab
from tether.world.vocab import extract_objects, plural, position_name, split_words


def test_synonyms_and_plurals_map_to_canonical_names():
    text = "Two boxes, a ball and three blocks; one disc. Crosses and a lozenge."
    assert extract_objects(text) == ["square", "circle", "square", "circle", "cross", "diamond"]


def test_two_word_names_win_over_their_last_word():
    # 'hollow circle' is a ring; a bare 'circle' is a circle; 'plus signs' is a plural two-word name.
    assert extract_objects("A hollow circle left of a circle.") == ["ring", "circle"]
    assert extract_objects("Two Hollow Circles and two plus signs") == ["ring", "cross"]
    assert extract_objects("a plus and a sign") == []


def test_words_that_merely_contain_a_name_are_not_objects():
    assert extract_objects("crossing the starry boxing ring-road") == ["ring"]
    assert extract_objects("") == []


def test_plural_forms():
    assert plural("box") == "boxes"
    assert plural("cross") == "crosses"
    assert plural("plus sign") == "plus signs"
    assert plural("hollow circle") == "hollow circles"
    assert plural("star") == "stars"


def test_split_words_keeps_punctuation_as_tokens():
    assert split_words("Is there a Box? Yes: two, maybe.") == [
        "is", "there", "a", "box", "?", "yes", ":", "two", ",", "maybe", ".",
    ]  # fmt: skip


def test_position_names_on_a_3x3_grid():
    names = [position_name(r, c, 3) for r in range(3) for c in range(3)]
    assert names == vocab.POSITIONS
    assert position_name(0, 1, 2) == "top right"


def test_hallucination_vocabulary_reads_and_rewrites_world_texts():
    import random

    from tether.data.negatives import HallucinationVocabulary, RuleRewriter

    vocabulary = vocab.hallucination_vocabulary()
    # the vocabulary the study's HACL negatives were written with: a change re-draws every HACL stage
    assert vocabulary == HallucinationVocabulary(
        objects={
            "circle": ["ball", "disc"],
            "square": ["box", "block"],
            "triangle": ["wedge"],
            "star": [],
            "diamond": ["lozenge"],
            "cross": ["plus sign"],
            "heart": [],
            "ring": ["donut", "hollow circle"],
        },
        colors=list(vocab.COLORS),
        sizes={"small": "large", "large": "small"},
        numbers=["two", "three", "four", "five", "six", "seven", "eight", "nine"],
        relations={"left of": "right of", "right of": "left of", "above": "below", "below": "above"},
    )
    text = "I can see a small pink wedge in the top left. The star is right of two hollow circles."
    assert [m.canonical for m in vocabulary.mentions(text)] == ["triangle", "star", "ring"]
    for kind, changed in [("attribute", {"small", "pink"}), ("count", {"two"}), ("position", {"right of"})]:
        rewrite = RuleRewriter(vocabulary, kinds=[kind], max_kinds=1).rewrite(text, rng=random.Random(0))
        assert rewrite.kinds == [kind] and rewrite.negative != text
        assert {c["from"] for c in rewrite.changes} <= changed
    position = RuleRewriter(vocabulary, kinds=["position"]).rewrite(text, rng=random.Random(0))
    assert "left of two hollow circles" in position.negative  # a relation becomes its inverse
