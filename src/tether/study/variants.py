"""The variant groups, in one table: each group module maps its variants' names to the functions that build
them (``VARIANTS``: ``fn(ctx) -> model folder``) and names those that need the world's preference split
(``PREFERENCE_VARIANTS``). A new group is one module and one line in ``GROUPS``; the order here is the
order variants train, evaluate and appear in the report. The decoding group's variants train nothing; a
trained variant and a strategy combine as ``ha_dpo+vcd`` (``tether.study.decoding``)."""

from __future__ import annotations

from tether.study import combo, decoding, dpo, hacl, noiseboost, rlhf, ssl

GROUPS = (hacl, noiseboost, dpo, rlhf, combo, ssl, decoding)

BUILDERS = {name: build for group in GROUPS for name, build in group.VARIANTS.items()}
VARIANTS = ("baseline", *BUILDERS)
PREFERENCE_VARIANTS = {name for group in GROUPS for name in getattr(group, "PREFERENCE_VARIANTS", ())}
TRAINED = tuple(name for name in BUILDERS if name not in decoding.VARIANTS)  # what a strategy combines with


def split_variant(name: str) -> tuple[str, str]:
    """``(model variant, decoding strategy)``: ``vcd`` -> (baseline, vcd), ``ha_dpo+vcd`` -> (ha_dpo, vcd)."""
    return decoding.split_variant(name, TRAINED)
