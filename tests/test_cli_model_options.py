"""``--chat-template`` on every command that loads a model checkpoint, from one helper."""

import argparse

import pytest

from tether.cli import build_parser
from tether.methods.commands import METHODS, _launching


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _loading_commands(parser):
    benchmarks = _subparser(parser, "eval")
    action = next(a for a in benchmarks._actions if isinstance(a, argparse._SubParsersAction))
    yield from [("eval", name, "run") for name in action.choices]
    yield from [("train", verb) for verb in METHODS]
    yield from [("models", "info"), ("data", "answer-pairs"), ("data", "pairs")]
    yield from [("analyze", "gap"), ("analyze", "attention")]


def test_every_command_that_loads_a_model_takes_chat_template():
    parser = build_parser()
    commands = list(_loading_commands(parser))
    assert len(commands) > 10
    for path in commands:
        options = {o for a in _subparser(parser, *path)._actions for o in a.option_strings}
        assert "--chat-template" in options, " ".join(path)


@pytest.mark.parametrize("verb", sorted(METHODS))
def test_train_commands_pass_chat_template_as_the_recipe_field(verb):
    args = build_parser().parse_args(["train", verb, "--set", "train.seed=1", "--chat-template", "llava-1.5"])
    assert _launching(lambda a: a.overrides)(args) == ["train.seed=1", "model.chat_template=llava-1.5"]
