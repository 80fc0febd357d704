"""The synthetic grounded world: scenes, renderer, texts, benchmark exports (`tether world build`)."""

from tether.world.texts import world_words
from tether.world.vocab import extract_objects

__all__ = ["extract_objects", "world_words"]
