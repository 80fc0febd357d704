"""Property tests of the text-file and YAML-recipe parsers: random bytes and random --set overrides give
results or a TetherError naming the file (or the override) — never a traceback."""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fuzz_strategies import check_clean_failure
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.config import load_config
from tether.core.errors import DataError, TetherError
from tether.data.negatives import coco_vocabulary
from tether.eval.chair import Vocabulary
from tether.eval.registry import get_benchmark

FUZZ = settings(max_examples=50, deadline=None)
text_bytes = st.binary(max_size=80) | st.text(max_size=80).map(str.encode)


@FUZZ
@given(text_bytes)
def test_word_lists(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synonyms.txt"
        path.write_bytes(data)
        check_clean_failure(lambda: Vocabulary.from_file(path), path)
        check_clean_failure(lambda: coco_vocabulary(path), path)


@FUZZ
@given(
    st.lists(
        st.tuples(st.text(max_size=6), st.text(max_size=6), st.sampled_from(["Yes", "No", "maybe", ""])),
        max_size=4,
    ),
    text_bytes,
)
def test_mme_release_folder(rows, garbage):
    with tempfile.TemporaryDirectory() as folder:
        subtask = Path(folder) / "color"
        subtask.mkdir()
        (subtask / "1.png").write_bytes(b"")
        text = "".join(f"{q}\t{a}\n" if not extra else f"{q}\t{a}\t{extra}\n" for q, extra, a in rows)
        (subtask / "1.txt").write_bytes(text.encode() + garbage)
        check_clean_failure(lambda: get_benchmark("mme").load_items(folder), Path(folder))


@dataclass
class Inner:
    path: str = "x"
    steps: int = 1
    rate: float = 0.1


@dataclass
class Recipe:
    name: str = "r"
    inner: Inner = field(default_factory=Inner)
    files: list[str] = field(default_factory=list)


overrides = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "name",
                "inner",
                "inner.path",
                "inner.steps",
                "inner.rate",
                "files",
                "inner.steps.x",
                "other",
                "",
            ]
        ),
        st.text(max_size=10),
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    max_size=3,
) | st.lists(st.text(max_size=12), max_size=2)


@FUZZ
@given(text_bytes, overrides)
def test_recipes_and_overrides(data, sets):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_bytes(data)
        try:
            config = load_config(Recipe, path, sets)
        except TetherError as e:
            message = str(e)
            assert str(path) in message or "--set" in message, message
        else:
            assert isinstance(config.inner, Inner) and isinstance(config.inner.steps, int)


def test_specific_recipe_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  path: x\n  steps: [1\n")
    with pytest.raises(TetherError, match=f"{bad}:4: invalid YAML"):
        load_config(Recipe, bad)
    with pytest.raises(TetherError, match=r"--set inner.steps=\[: invalid YAML value"):
        load_config(Recipe, None, ["inner.steps=["])
    # a string field takes the text as typed where YAML reads something else (issue 23, problem 5)
    typed = load_config(Recipe, None, ["inner.path={image_id}.png", "name=[", "files=[a, '{b}']"])
    assert (typed.inner.path, typed.name, typed.files) == ("{image_id}.png", "[", ["a", "{b}"])
    with pytest.raises(TetherError, match="'steps' is not a section"):
        load_config(Recipe, None, ["inner.steps=3", "inner.steps.x=1"])
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9, cafe\n")
    with pytest.raises(DataError, match="latin.txt: not UTF-8 text"):
        Vocabulary.from_file(tmp_path / "latin.txt")
