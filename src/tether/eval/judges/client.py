"""An OpenAI-compatible chat client for LLM judges: cached, retried, and accounted.

One client works with the OpenAI API and with local servers that speak the same protocol (vLLM,
llama.cpp, TGI): only ``base_url`` changes. The ``openai`` SDK does the HTTP; its own retries are
switched off and done here instead, so which failures are retried, how often, and how long we wait
is explicit and testable:

- retried (bounded by ``max_retries``, exponential backoff with jitter, at least the server's
  Retry-After): HTTP 408/429/5xx, timeouts, connection errors, malformed or truncated JSON, replies
  without content;
- not retried (``JudgeError`` at once): other 4xx such as 400, 401, 404.

The API key is read from an environment variable, handed to the SDK, and never written anywhere:
not in ``settings()``, the cache, logs, or error messages.
"""

import email.utils
import json
import logging
import os
import random
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from tether.core.errors import TetherError
from tether.eval.judges.cache import ReplyCache, cache_key

log = logging.getLogger(__name__)

OPENAI_HOST = "api.openai.com"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
LOCAL_PLACEHOLDER_KEY = "not-needed-for-local-server"
MAX_WAIT_S = 120.0  # no single wait between retries is longer, whatever Retry-After says
RETRY_STATUSES = {408, 409, 429}  # plus every 5xx


class JudgeError(TetherError):
    """The judge could not answer: a rejected request (4xx, its ``status``), or retries ran out."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RetryableReply(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Usage:
    """What a client has cost so far. Tokens and cost count only replies the server actually sent."""

    calls: int = 0  # complete() calls answered
    cache_hits: int = 0  # of which answered from the cache
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # in the currency of the prices; None when no prices are set

    def to_dict(self) -> dict:
        return asdict(self)


class ChatClient:
    """A chat-completions judge. ``complete(messages)`` returns the reply text.

    ``base_url=None`` means the OpenAI API. For a loopback server (127.0.0.1, localhost) a missing key
    is replaced by a placeholder; for any other host it is an error naming ``api_key_env``.
    Prices are per 1000 tokens; without them, cost is not computed.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        cache_dir=None,
        price_per_1k_input: float | None = None,
        price_per_1k_output: float | None = None,
        role: str = "judge",
    ):
        if not model:
            raise JudgeError("no judge model given")
        if max_retries < 0 or timeout <= 0 or backoff < 0:
            raise JudgeError("max_retries and backoff must be >= 0 and timeout > 0")
        self.model = model
        self.role = role  # what errors and logs call it: a judge, or the served model under evaluation
        self.base_url = base_url
        self.host = _host_of(base_url)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.price_per_1k_input = price_per_1k_input
        self.price_per_1k_output = price_per_1k_output
        self.cache = ReplyCache(cache_dir) if cache_dir is not None else None
        self.usage = Usage(cost=0.0 if self._has_prices() else None)
        self._lock = threading.Lock()
        self._sleep = time.sleep  # tests replace these two to see the waits without waiting
        self._random = random.Random()

        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            if urlparse(base_url or "").hostname not in LOCAL_HOSTS:
                raise JudgeError(
                    f"{role} '{model}' at {self.host}: no API key; set the environment variable {api_key_env}"
                )
            api_key = LOCAL_PLACEHOLDER_KEY
        import openai  # here, not at the top: `tether --help` must not pay for it

        self._openai = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)

    def settings(self) -> dict:
        """What a results file records about the judge (never the key)."""
        return {
            "model": self.model,
            "base_url": self.host,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def complete(self, messages: list[dict]) -> str:
        """The judge's reply to a chat (a list of ``{"role", "content"}``), from the cache when possible."""
        _check_messages(messages)
        # The host is not part of the key: the same model behind another port gives the same replies.
        key = cache_key(
            self.model, {"temperature": self.temperature, "max_tokens": self.max_tokens}, messages
        )
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.usage.calls += 1
                    self.usage.cache_hits += 1
                return hit["reply"]
        reply, tokens = self._request_with_retries(
            messages, {}, lambda data: _parse_completion(data, self._where(), self.max_tokens)
        )
        with self._lock:
            self._account(tokens)
            if self.cache is not None:
                self.cache.put(key, self.model, reply, tokens)
        return reply

    def chat(self, messages: list[dict], parse, **params):
        """One uncached request with the same retry rules: ``params`` (e.g. ``seed``, ``stop``, ``logprobs``,
        ``temperature``) override the client's settings, and ``parse(response_json)`` returns what the caller
        wants or raises ``RetryableReply`` for a reply worth another attempt. Usage is accounted as for
        ``complete``. Safe to call from several threads at once."""
        _check_messages(messages)
        result, tokens = self._request_with_retries(messages, params, lambda data: _with_tokens(parse, data))
        with self._lock:
            self._account(tokens)
        return result

    def usage_report(self) -> str:
        """One line for the end of a run: calls, cache hits, requests, retries, tokens, cost."""
        u = self.usage
        cost = "cost not computed (no prices set)" if u.cost is None else f"cost {u.cost:.4f}"
        return (
            f"judge {self.model} at {self.host}: {u.calls} calls ({u.cache_hits} from cache), "
            f"{u.requests} requests ({u.retries} retries), {u.prompt_tokens} prompt + "
            f"{u.completion_tokens} completion tokens, {cost}"
        )

    # -- internals ---------------------------------------------------------------------------------

    def _account(self, tokens: dict) -> None:
        """Add one answered call's tokens and cost (the caller holds ``self._lock``)."""
        self.usage.calls += 1
        self.usage.prompt_tokens += tokens["prompt_tokens"]
        self.usage.completion_tokens += tokens["completion_tokens"]
        if self.usage.cost is not None:
            self.usage.cost += self._cost(tokens)

    def _has_prices(self) -> bool:
        return self.price_per_1k_input is not None or self.price_per_1k_output is not None

    def _cost(self, tokens: dict) -> float:
        price_in = self.price_per_1k_input or 0.0
        price_out = self.price_per_1k_output or 0.0
        return tokens["prompt_tokens"] / 1000 * price_in + tokens["completion_tokens"] / 1000 * price_out

    def _where(self) -> str:
        return f"{self.role} '{self.model}' at {self.host}"

    def _scrub(self, text: str) -> str:
        """Remove the key from text that came from outside (a server's error message can echo it)."""
        key = self._openai.api_key
        return text.replace(key, "***") if key else text

    def _request_with_retries(self, messages: list[dict], params: dict, parse) -> tuple:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            with self._lock:
                self.usage.requests += 1
            try:
                return self._request_once(messages, params, parse)
            except RetryableReply as failure:
                reason = self._scrub(str(failure))
                if attempt == attempts - 1:
                    raise JudgeError(
                        f"{self._where()}: gave up after {attempts} attempts; last failure: {reason}"
                    ) from None
                wait = self._wait_before_retry(attempt, failure.retry_after)
                log.warning(
                    "%s: %s; retry %d/%d in %.2f s",
                    self._where(),
                    reason,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
                with self._lock:
                    self.usage.retries += 1
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _wait_before_retry(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (50-100% of backoff * 2^attempt), at least Retry-After."""
        wait = self.backoff * 2**attempt * (0.5 + 0.5 * self._random.random())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, MAX_WAIT_S)

    def _request_once(self, messages: list[dict], params: dict, parse) -> tuple:
        import openai

        request = {"temperature": self.temperature, "max_tokens": self.max_tokens, **params}
        try:
            raw = self._openai.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, **request
            )
            body = raw.content
        except openai.APITimeoutError:
            raise RetryableReply(f"no reply within {self.timeout:g} s") from None
        except openai.APIConnectionError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection error"
            raise RetryableReply(f"connection failed or reply cut off ({cause})") from None
        except openai.APIStatusError as e:
            status = e.status_code
            if status in RETRY_STATUSES or status >= 500:
                raise RetryableReply(f"HTTP {status}", _retry_after_seconds(e.response.headers)) from None
            message = self._scrub(_error_message(e))[:300]
            raise JudgeError(f"{self._where()}: HTTP {status}: {message}", status=status) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise RetryableReply(f"malformed JSON reply ({len(body)} bytes)") from None
        return parse(data)


def _with_tokens(parse, data) -> tuple:
    if not isinstance(data, dict):
        raise RetryableReply("reply is not a JSON object")
    return parse(data), _usage_tokens(data)


def _usage_tokens(data: dict) -> dict:
    usage = data.get("usage") or {}
    return {name: int(usage.get(name) or 0) for name in ("prompt_tokens", "completion_tokens")}


def _parse_completion(data, where: str, max_tokens: int) -> tuple[str, dict]:
    """Reply text and token counts from a chat-completions response; retryable if it has no text."""
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RetryableReply("reply without choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise RetryableReply("reply with empty content")
    if choice.get("finish_reason") == "length":
        log.warning("%s: reply cut at max_tokens=%d; consider raising it", where, max_tokens)
    return content, _usage_tokens(data)


def _retry_after_seconds(headers) -> float | None:
    """The server's wait hint: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(error) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(error, "message", "")) or "request rejected"


def _host_of(base_url: str | None) -> str:
    if not base_url:
        return OPENAI_HOST
    parsed = urlparse(base_url)
    if not parsed.scheme or not parsed.netloc:
        raise JudgeError(f"judge base_url must look like http://host:port/v1, got '{base_url}'")
    return parsed.netloc.rsplit("@", 1)[-1]  # drop user:password@ if someone put credentials there


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise JudgeError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise JudgeError(f"message {i} must be a dict with 'role' and 'content'")
