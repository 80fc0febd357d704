"""Training-free decoding strategies against hallucination, on every family tether loads.

``DecodingSettings.strategy`` picks one (``registry.py``: vcd, icd, m3id, opera, pai; "greedy" is the
model's own ``generate``) and ``DecodingSettings.strategy_options`` holds its parameters.
``dispatch.generate`` is the one place that dispatches; ``dispatch.fast_margins`` is the fast yes/no mode's.
A layer above ``tether.models`` (which never imports it) and below eval, methods and data. The package
itself imports nothing, so ``--decoding``'s options load without torch. Formulas and papers: docs/decoding.md.
"""
