"""``--decoding NAME`` and ``--decoding-set KEY=VALUE`` on the commands that generate (``eval <bench> run``,
``data pairs``): the strategy and its options, checked against the strategy's settings dataclass."""

from __future__ import annotations

from dataclasses import asdict

from tether.core.config import SetValue, from_dict
from tether.core.errors import TetherError
from tether.decoding.registry import GREEDY, STRATEGY_MODULES, get_strategy, strategy_names


def add_decoding_options(parser) -> None:
    helps = "; ".join(f"{name}: {text}" for name, (_, text) in STRATEGY_MODULES.items())
    parser.add_argument(
        "--decoding",
        choices=strategy_names(),
        default=GREEDY,
        help=f"training-free decoding strategy (docs/decoding.md): {GREEDY} (default): the model's own "
        f"generate with the command's other decoding options; {helps}; a strategy samples from its own "
        "distribution when the command samples; recorded",
    )
    parser.add_argument(
        "--decoding-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the --decoding strategy, e.g. alpha=0.5 (repeatable; the others keep the "
        "paper's defaults; recorded with the results)",
    )


def decoding_from_args(args) -> dict:
    """``{"strategy", "strategy_options"}`` for ``DecodingSettings``, every option filled in."""
    return {"strategy": args.decoding, "strategy_options": strategy_options(args.decoding, args.decoding_set)}


def strategy_options(name: str, items: list[str]) -> dict:
    """``KEY=VALUE`` items as strategy ``name``'s options (values read as YAML, typed by its settings)."""
    if name == GREEDY:
        if items:
            raise TetherError(f"--decoding-set needs a --decoding strategy ({', '.join(STRATEGY_MODULES)})")
        return {}
    raw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TetherError(f"--decoding-set expects KEY=VALUE, got '{item}'")
        raw[key.strip()] = SetValue(value, item)
    settings = from_dict(get_strategy(name).settings_cls, raw, where=f"--decoding-set ({name})")
    if hasattr(settings, "check"):
        settings.check()
    return asdict(settings)
