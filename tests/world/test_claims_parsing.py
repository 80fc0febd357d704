"""The sentence grammar against a hand-built scene (grid 3x3), every expectation worked out by hand."""

import pytest

from tether.world.claims import check_sentence, parse_sentence, parse_text, sentence_label
from tether.world.scene import Scene, SceneObject, derive_relations

# top left: small red circle; top right: large blue square; center: large yellow star;
# bottom: small green square.
OBJECTS = [
    SceneObject("circle", "red", "small", (0, 0), (0, 0, 1, 1)),
    SceneObject("square", "blue", "large", (0, 2), (0, 0, 1, 1)),
    SceneObject("star", "yellow", "large", (1, 1), (0, 0, 1, 1)),
    SceneObject("square", "green", "small", (2, 1), (0, 0, 1, 1)),
]
SCENE = Scene("test_0", "test_0.png", OBJECTS, derive_relations(OBJECTS))


def label(*sentences: str) -> str:
    """Label of the last sentence, the earlier ones giving "it" its antecedent."""
    parsed = parse_text(list(sentences))
    return sentence_label(check_sentence(parsed[-1], SCENE, 3))[0]


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("There is a small red ball in the top left", "correct"),  # synonym, size, colour, position
        ("In the center, there is a yellow star", "correct"),  # position phrase before the noun
        ("A red disc sits on the right", "hallucination"),  # the only circle is top left
        ("There is a green circle", "hallucination"),  # wrong colour for every circle
        ("There is a small blue square", "hallucination"),  # blue one is large, small one is green
        ("There is a blue box", "correct"),  # one of the two squares fits
        ("There is a heart", "hallucination"),  # absent shape
        ("I can see a hollow circle", "hallucination"),  # two-word synonym of ring, absent
        ("There are two boxes", "correct"),
        ("There are three squares", "hallucination"),
        ("There is one blue block", "correct"),
        ("The star is yellow", "correct"),  # predicate
        ("The stars are blue", "hallucination"),
        ("The blue box is right of the green box", "correct"),  # column 2 vs 1
        ("The green square is above the star", "hallucination"),  # row 2 vs 1: below
        ("The circle is left of and above the green square", "correct"),
        ("The circle is on the left of the blue square", "correct"),
        ("The star is larger than the circle", "correct"),
        ("The circle is bigger than the star", "hallucination"),
        ("There is no heart in the image", "correct"),
        ("I don't see any stars", "hallucination"),
        ("Four shapes on a black background", "correct"),
        ("Five shapes on a black background", "hallucination"),
        ("The background is white", "hallucination"),
        ("The star is not red", "cannot judge"),  # negation the grammar cannot scope
        ("The picture feels calm", "cannot judge"),
        ("No, the star is yellow", "correct"),  # an opening "No" answers; it negates nothing
    ],
)
def test_sentence_labels(sentence, expected):
    assert label(sentence) == expected


def test_it_refers_to_the_last_shape_of_an_earlier_sentence():
    assert label("There is a yellow star", "It is in the center") == "correct"
    assert label("There is a star", "It is at the top") == "hallucination"
    assert label("There is a star", "It looks nice") == "cannot judge"  # says nothing new about it
    assert label("It is at the top") == "cannot judge"  # no antecedent


def test_parse_keeps_answer_words_that_no_shape_took():
    sentence = parse_sentence("Blue or red, maybe 2")
    assert sentence.mentions == []
    assert sentence.loose_colors == {"blue", "red"}
    assert sentence.loose_numbers == {2}
    assert parse_sentence("Above and to the left").loose_relations == {"above"}
    assert parse_sentence("What shape is on the right?").loose_positions == {"right"}


def test_reasons_name_the_false_claim():
    parsed = parse_sentence("There are three squares and a heart")
    label_, reason = sentence_label(check_sentence(parsed, SCENE, 3))
    assert label_ == "hallucination"
    assert "2 square in the scene, not 3" in reason and "no heart" in reason
