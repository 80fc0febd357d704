"""`tether train <verb>`: one table maps every method's flags to its config fields."""

import argparse
import dataclasses
import importlib
import typing

import pytest

from tether.methods.commands import METHODS, apply_flag, register
from tether.methods.noise import NoiseSettings


def parse(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def configured(verb, *argv, overrides=()):
    """The config `tether train <verb> <argv>` would train, without training."""
    from tether.core.config import load_config

    method = METHODS[verb]
    args = parse(verb, *argv)
    config = load_config(
        getattr(importlib.import_module(method.module), method.config), None, list(overrides)
    )
    for flag in method.flags:
        apply_flag(config, flag, getattr(args, flag.flag.removeprefix("--").replace("-", "_")))
    return config


@pytest.mark.parametrize("verb", list(METHODS))
def test_every_flag_names_a_field_of_its_config_with_the_flags_type(verb):
    method = METHODS[verb]
    node_class = getattr(importlib.import_module(method.module), method.config)
    for flag in method.flags:
        cls = node_class
        *sections, name = flag.field.split(".")
        for section in sections:
            hint = typing.get_type_hints(cls)[section]
            cls = next(t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t))
        hint = typing.get_type_hints(cls)[name]
        expected = {"set": flag.type, "extend": list[str], "false": bool}[flag.action]
        assert hint == expected or expected in typing.get_args(hint), (verb, flag.flag, hint)


def test_flags_override_the_recipe_and_its_set_items():
    config = configured("dpo", "--beta", "0.3", "--output-dir", "out", overrides=["dpo.beta=0.2"])
    assert (config.dpo.beta, config.train.output_dir) == (0.3, "out")
    # an unused flag keeps the recipe's value
    assert configured("dpo", overrides=["dpo.beta=0.2"]).dpo.beta == 0.2


def test_noiseboost_flag_sets_the_scale_and_keeps_the_rest_of_the_section():
    config = configured("sft", "--noiseboost", "0.3", overrides=["noiseboost={schedule: cosine}"])
    assert config.noiseboost == NoiseSettings(scale=0.3, schedule="cosine")
    # a recipe that turned NoiseBoost off gets the default section with the flag's scale
    ssl = configured("ssl", "--noiseboost", "0.25", overrides=["noiseboost=null"])
    assert ssl.noiseboost == NoiseSettings(scale=0.25)
    assert configured("ssl", "--noiseboost", "0").noiseboost.scale == 0.0  # 0 turns the noise off


def test_repeated_negatives_add_to_the_recipe_list_and_no_facts_is_a_switch():
    config = configured(
        "hacl", "--negatives", "b.jsonl", "--negatives", "c.jsonl", overrides=["data.negatives=[a]"]
    )
    assert config.data.negatives == ["a", "b.jsonl", "c.jsonl"]
    assert configured("reward", "--no-facts").reward.use_facts is False
    assert configured("reward").reward.use_facts is True
