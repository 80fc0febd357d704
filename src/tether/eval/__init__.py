"""Evaluation: benchmark loaders, scorers, runners, and the LLM judges some of them need."""
