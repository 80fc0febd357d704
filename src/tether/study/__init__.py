"""`tether study`: the papers' claims reproduced end to end in the synthetic world (docs/study.md).

``preset`` (settings) → ``pipeline`` (the loop over seeds) → ``recipe`` (the baseline) and the variant
groups of ``variants`` → ``evaluate`` → ``analyses`` → ``report``; ``stages`` caches every step. Nothing is
imported here, so ``tether study --help`` stays fast.
"""
