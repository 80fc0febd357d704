"""Training-free decoding strategies against hallucination, on every family tether loads.

``DecodingSettings.strategy`` picks one (``registry.py``: vcd, icd, m3id; "greedy" is the model's own
``generate``) and ``DecodingSettings.strategy_options`` holds its parameters. ``generate`` is the one place
that dispatches; ``fast_margins`` is the fast yes/no mode's. A layer above ``tether.models`` (which never
imports it) and below eval, methods and data. The formulas and their papers: docs/decoding.md.
"""

from __future__ import annotations

from dataclasses import replace

from tether.decoding.registry import (
    GREEDY,
    STRATEGY_MODULES,
    Strategy,
    get_strategy,
    resolved_options,
    strategy_names,
    strategy_settings,
)
from tether.errors import TetherError
from tether.models.decoding import DecodingSettings


def resolve(decoding: DecodingSettings) -> DecodingSettings:
    """``decoding`` with its strategy checked and every option of it filled in (the paper's defaults): what
    results record and fingerprints compare, so an option left at its default equals one set to it."""
    return replace(decoding, strategy_options=resolved_options(decoding.strategy, decoding.strategy_options))


def generate(vlm, images, prompts, decoding: DecodingSettings) -> list[str]:
    """Answers for ``prompts`` about ``images`` with ``decoding``'s strategy (batched, left padding)."""
    if decoding.strategy == GREEDY:
        return vlm.generate(images, prompts, decoding)
    strategy = get_strategy(decoding.strategy)
    settings = strategy_settings(decoding.strategy, decoding.strategy_options)
    if not hasattr(vlm, "encode"):
        raise TetherError(f"decoding '{decoding.strategy}' needs a local Hugging Face model (--backend hf)")
    return strategy.generate(vlm, images, prompts, settings, decoding)


def fast_margins(vlm, images, questions: list[tuple[int, str]], decoding: DecodingSettings):
    """Yes/no margins (a tensor) of ``(image index, prompt)`` questions in fast mode, under ``decoding``'s
    strategy."""
    if decoding.strategy == GREEDY:
        from tether.decoding.yes_no import multi_image_margins

        return multi_image_margins(vlm, images, questions)
    strategy = get_strategy(decoding.strategy)
    if strategy.margins is None:
        raise TetherError(f"decoding '{decoding.strategy}' has no fast yes/no variant: use --mode generate")
    settings = strategy_settings(decoding.strategy, decoding.strategy_options)
    return strategy.margins(vlm, images, questions, settings)


__all__ = [
    "GREEDY",
    "STRATEGY_MODULES",
    "Strategy",
    "fast_margins",
    "generate",
    "get_strategy",
    "resolve",
    "strategy_names",
    "strategy_settings",
]
