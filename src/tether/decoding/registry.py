"""The decoding strategies, by name, and their settings.

A ``Strategy`` is what ``tether.decoding.dispatch`` calls, for answers and for the fast yes/no mode:

- ``settings_cls``: a dataclass of the strategy's parameters, defaulting to its paper's settings;
- ``generate(vlm, images, prompts, settings, decoding) -> list[str]``: batched (left padding), stopping
  like ``vlm.generate``; ``decoding`` (``DecodingSettings``) gives the budget, greedy or sampled selection,
  and the sampling knobs;
- ``margins(vlm, images, questions, settings) -> Tensor``: yes/no margins of ``(image index, prompt)``
  questions (``tether.decoding.yes_no``'s contract), or None where the strategy has no fast variant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from tether.core.errors import TetherError

GREEDY = "greedy"  # the model's own generate: greedy, sampling or beam search as DecodingSettings say


@dataclass(frozen=True)
class Strategy:
    name: str
    settings_cls: type
    generate: Callable
    margins: Callable | None


# name -> (module defining ``STRATEGY``, one line for --help). Imported on first use: building the CLI's
# --help reads the names without importing torch.
STRATEGY_MODULES: dict[str, tuple[str, str]] = {
    "vcd": ("tether.decoding.vcd", "visual contrastive decoding (a noised image)"),
    "icd": ("tether.decoding.icd", "instruction contrastive decoding (a disturbing instruction)"),
    "m3id": ("tether.decoding.m3id", "mutual-information decoding (the model without the image)"),
    "opera": ("tether.decoding.opera", "beam search with OPERA's over-trust penalty and retrospection"),
    "pai": ("tether.decoding.pai", "amplified attention to the image, contrasted with the image-free logits"),
}


def strategy_names() -> list[str]:
    return [GREEDY, *STRATEGY_MODULES]


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGY_MODULES:
        raise TetherError(f"unknown decoding strategy '{name}'; choose from {', '.join(strategy_names())}")
    return importlib.import_module(STRATEGY_MODULES[name][0]).STRATEGY


def strategy_settings(name: str, options: dict):
    """The settings dataclass of strategy ``name`` from ``options`` (missing ones at the paper's defaults);
    an unknown option or a value of the wrong type is an error naming it."""
    if name == GREEDY:
        if options:
            raise TetherError(f"decoding '{GREEDY}' takes no strategy options, got {sorted(options)}")
        return None
    settings_cls = get_strategy(name).settings_cls
    known = {f.name: f for f in fields(settings_cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TetherError(f"decoding '{name}' has no option {unknown}; its options: {', '.join(known)}")
    values = {}
    for key, value in options.items():
        kind = type(getattr(settings_cls(), key))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TetherError(f"decoding '{name}' option {key} must be {kind.__name__}, got {value!r}")
        values[key] = value
    settings = settings_cls(**values)
    if hasattr(settings, "check"):
        settings.check()
    return settings


def resolved_options(name: str, options: dict) -> dict:
    """Every option of strategy ``name``, defaults filled in: what results record and fingerprints compare."""
    settings = strategy_settings(name, options)
    return {} if settings is None else asdict(settings)
