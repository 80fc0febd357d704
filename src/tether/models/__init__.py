"""Loading local Hugging Face vision-language checkpoints behind one adapter interface."""

from tether.models.adapter import ImageTokenMismatch, ModelBatch, ResponseLogProbs, VisionLanguageModel
from tether.models.decoding import DecodingSettings
from tether.models.loading import ADAPTERS, load

__all__ = [
    "ADAPTERS",
    "DecodingSettings",
    "ImageTokenMismatch",
    "ModelBatch",
    "ResponseLogProbs",
    "VisionLanguageModel",
    "load",
]
