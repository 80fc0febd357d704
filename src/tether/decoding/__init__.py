"""Decoding strategies against hallucination."""
