"""The synthetic grounded world: scenes, renderer, texts, benchmark exports (`tether world build`)."""
