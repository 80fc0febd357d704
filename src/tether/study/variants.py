"""The variant groups, in one table: each group module maps its variants' names to the functions that build
them (``VARIANTS``: ``fn(ctx) -> model folder``) and names those that need the world's preference split
(``PREFERENCE_VARIANTS``). A new group is one module and one line in ``GROUPS``; the order here is the
order variants train, evaluate and appear in the report."""

from __future__ import annotations

from tether.study import combo, dpo, hacl, noiseboost, rlhf, ssl

GROUPS = (hacl, noiseboost, dpo, rlhf, combo, ssl)

BUILDERS = {name: build for group in GROUPS for name, build in group.VARIANTS.items()}
VARIANTS = ("baseline", *BUILDERS)
PREFERENCE_VARIANTS = {name for group in GROUPS for name in getattr(group, "PREFERENCE_VARIANTS", ())}
