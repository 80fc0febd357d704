"""The command-line option helpers every command that reads a YAML recipe shares."""

import argparse


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """The shared ``--config`` / ``--set`` pair of every command that reads a YAML recipe."""
    parser.add_argument("--config", help="YAML recipe (see configs/)")
    add_overrides_option(
        parser, "override a config field, dotted for nested sections (repeatable), e.g. --set train.lr=1e-4"
    )


def add_overrides_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, read by ``tether.core.config.apply_overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
