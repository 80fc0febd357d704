"""Analyses of what a model represents: modality gap (HACL), ..."""
