"""The methods together: the HACL model, then HA-DPO with NoiseBoost on the chosen branch. It reuses the
``hacl`` model rather than training a third SFT (the full preset's time budget)."""

from __future__ import annotations

from tether.study.dpo import dpo
from tether.study.hacl import hacl


def combo(ctx) -> str:
    return dpo(ctx, "combo_dpo", hacl(ctx), noise=True)


VARIANTS = {"combo": combo}
PREFERENCE_VARIANTS = set(VARIANTS)
