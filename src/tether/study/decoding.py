"""Training-free decoding (``tether.decoding``: VCD, ICD, M3ID, OPERA, PAI) as study variants: each runs on
the baseline model with no training, evaluated on every benchmark with the strategy's paper defaults, and
``<trained variant>+<strategy>`` (``ha_dpo+vcd``) runs the strategy on that variant's model.

Yes/no benchmarks use the strategy's fast variant (one forward per question, as the other variants' fast
mode); OPERA has none, so its yes/no answers are generated, with beam search and its penalty, under a short
budget (``tether.study.evaluate.YES_NO_TOKENS``): the answer's first word decides it, as POPE's scorer
reads it."""

from __future__ import annotations

from tether.core.errors import TetherError
from tether.decoding.registry import STRATEGY_MODULES
from tether.models.decoding import DecodingSettings

STRATEGIES = tuple(STRATEGY_MODULES)  # vcd, icd, m3id, opera, pai


def on_baseline(ctx) -> str:
    return ctx.stage_model("sft")  # the baseline model: these variants train nothing


VARIANTS = {name: on_baseline for name in STRATEGIES}


def split_variant(name: str, trained: tuple[str, ...]) -> tuple[str, str]:
    """``(model variant, decoding strategy)`` of a variant name: ``vcd`` -> ("baseline", "vcd"),
    ``ha_dpo+vcd`` -> ("ha_dpo", "vcd"), ``ha_dpo`` -> ("ha_dpo", "greedy"). ``trained`` are the variants a
    strategy can be combined with; any other name is an error naming the choices."""
    if name in STRATEGIES:
        return "baseline", name
    if "+" not in name:
        return name, "greedy"
    model, _, strategy = name.partition("+")
    if model not in trained or strategy not in STRATEGIES:
        raise TetherError(
            f"variant '{name}': a combination is <trained variant>+<decoding strategy>, with the trained "
            f"variant one of {list(trained)} and the strategy one of {list(STRATEGIES)}"
        )
    return model, strategy


def decoding_settings(strategy: str) -> DecodingSettings | None:
    """The settings a variant's evaluation decodes with (the paper's defaults), None for plain greedy."""
    if strategy == "greedy":
        return None
    return DecodingSettings(strategy=strategy)
