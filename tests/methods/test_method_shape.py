"""Every method has one shape: a documented config, a pure loss module, and modules a reader takes in at once."""

import dataclasses
import importlib
import inspect
import re
import typing
from pathlib import Path

import pytest

from tether.methods.commands import METHODS

SRC = Path(__file__).resolve().parents[2] / "src" / "tether"
MAX_LINES = 500


def documented_parameters(cls) -> set[str]:
    """Names listed in the ``Parameters:`` block of ``cls``'s docstring (``name:`` or ``a, b, c:``)."""
    doc = inspect.getdoc(cls) or ""
    if "Parameters:" not in doc:
        return set()
    names = set()
    for line in doc.split("Parameters:", 1)[1].splitlines():
        match = re.match(r"^\s{4}(\w+(?:, \w+)*):", line)
        if match:
            names.update(match.group(1).split(", "))
    return names


def sections(cls) -> list[type]:
    """``cls`` and every dataclass it holds, recursively (the sections of a recipe)."""
    found, todo = [], [cls]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        for hint in typing.get_type_hints(current).values():
            todo.extend(t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t))
    return found


@pytest.mark.parametrize("verb", list(METHODS))
def test_every_config_section_documents_every_parameter(verb):
    # TRL's way: the dataclass's docstring lists each of its fields, so `help(SFTConfig)` is the reference
    method = METHODS[verb]
    config = getattr(importlib.import_module(method.module), method.config)
    for section in sections(config):
        own = {f.name for f in dataclasses.fields(section)}
        inherited = set().union(*(documented_parameters(base) for base in section.__mro__[1:]))
        missing = own - documented_parameters(section) - inherited
        assert not missing, f"{section.__name__}'s docstring does not document {sorted(missing)}"


@pytest.mark.parametrize("verb", list(METHODS))
def test_every_method_has_its_pure_loss_module(verb):
    # SSL trains with SFT's loss (a noised student fine-tuned on pseudo-labels): its loss module is SFT's
    name = "sft" if verb == "ssl" else verb
    source = Path(importlib.import_module(f"tether.methods.{name}_loss").__file__).read_text()
    # pure: functions of tensors (log-probs, logits, rewards), never of a model
    assert "VisionLanguageModel" not in source and "vlm" not in source and "import torch" in source


def test_no_module_over_the_line_limit_in_methods_and_the_model_adapter():
    files = [*sorted((SRC / "methods").glob("*.py")), SRC / "models" / "adapter.py"]
    long = {f.name: n for f in files if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split by concept: {long}"
