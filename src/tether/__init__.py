"""tether: measure and reduce hallucination in multimodal LLMs."""

__version__ = "0.1.0"
