"""Analyses of trained models: modality gap, attention share, plots."""
