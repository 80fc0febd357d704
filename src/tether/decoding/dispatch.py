"""The one place that dispatches decoding: ``generate`` for answers, ``fast_margins`` for fast yes/no, and
``resolve`` to fill in a strategy's options (what results record and fingerprints compare)."""


from __future__ import annotations

from dataclasses import replace

from tether.core.errors import TetherError
from tether.decoding.registry import GREEDY, get_strategy, resolved_options, strategy_settings
from tether.decoding.yes_no import multi_image_margins
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
        return multi_image_margins(vlm, images, questions)
    strategy = get_strategy(decoding.strategy)
    if strategy.margins is None:
        raise TetherError(f"decoding '{decoding.strategy}' has no fast yes/no variant: use --mode generate")
    settings = strategy_settings(decoding.strategy, decoding.strategy_options)
    return strategy.margins(vlm, images, questions, settings)

