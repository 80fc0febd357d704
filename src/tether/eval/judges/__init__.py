"""LLM judges: an OpenAI-compatible chat client with a reply cache, retries, and usage accounting.

Build one from a recipe section with ``make_client(JudgeConfig(...))`` or, from YAML,
``make_client(load_config(JudgeConfig, path, overrides))``.
"""

from dataclasses import dataclass

from tether.eval.judges.cache import ReplyCache, cache_key
from tether.eval.judges.client import ChatClient, JudgeError, Usage

__all__ = ["ChatClient", "JudgeConfig", "JudgeError", "ReplyCache", "Usage", "cache_key", "make_client"]


@dataclass
class JudgeConfig:
    """The ``judge:`` section of an evaluation recipe. The key itself never goes in a config, only its env var."""

    model: str = ""  # e.g. gpt-4o-2024-08-06, or the model name a local vLLM server serves
    base_url: str | None = None  # None: the OpenAI API; e.g. http://127.0.0.1:8000/v1 for vLLM
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    max_retries: int = 5
    backoff: float = 1.0
    cache_dir: str | None = None
    price_per_1k_input: float | None = None
    price_per_1k_output: float | None = None


def make_client(config: JudgeConfig) -> ChatClient:
    """A :class:`ChatClient` with the config's settings; errors name the missing piece."""
    if not config.model:
        raise JudgeError("judge model is not set (the `model` field of the judge config)")
    return ChatClient(
        model=config.model,
        base_url=config.base_url,
        api_key_env=config.api_key_env,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        timeout=config.timeout,
        max_retries=config.max_retries,
        backoff=config.backoff,
        cache_dir=config.cache_dir,
        price_per_1k_input=config.price_per_1k_input,
        price_per_1k_output=config.price_per_1k_output,
    )
