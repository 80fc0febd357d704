"""Loading local Hugging Face vision-language checkpoints behind one adapter interface.

The names below are imported on first use (PEP 562), so importing a submodule that needs no torch
(``tether.models.commands`` when the CLI builds its ``--help``) does not pull torch in.
"""

import importlib

_EXPORTS = {
    "ADAPTERS": "tether.models.loading",
    "DecodingSettings": "tether.models.decoding",
    "ImageTokenMismatch": "tether.models.batch",
    "ModelBatch": "tether.models.batch",
    "ResponseLogProbs": "tether.models.batch",
    "VisionLanguageModel": "tether.models.adapter",
    "load": "tether.models.loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tether.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
