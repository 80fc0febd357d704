"""Typed records, file IO with line-numbered validation, importers, negatives and preference pairs."""
