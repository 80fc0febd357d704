"""A model under evaluation behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, TGI, a hosted
API, ``tether serve``).

``EndpointModel`` has the method the runner and the pair pipelines call on a local model,
``generate(images, prompts, settings) -> list[str]``, and answers one item at a time for the runner's
concurrent path (``endpoint_answers``). HTTP, retries (Retry-After, 5xx, timeouts, malformed JSON) and
token accounting are the judges' client (``tether.eval.judges.client.ChatClient``), so a served model
and a judge fail and recover the same way. The API key is read from an environment variable by that
client and never written anywhere.

- Images go as base64 PNG data URLs (lossless: the server decodes the very pixels a local run sees).
- Decoding settings are forwarded: greedy is ``temperature=0``; sampling sends temperature, top_p and the
  seed (``seed + row`` for rows of one call, so repeated prompts differ as the rows of a seeded local batch
  do); ``stop`` strings, top_k and repetition_penalty (vLLM's extra parameters) when set. Beam search is
  refused: the chat-completions API has none.
- Fast yes/no mode asks for one token with ``logprobs``/``top_logprobs`` and compares the probability mass
  of the yes-tokens and the no-tokens among the top tokens, as the local fast mode does over the full
  distribution (a side absent from the top ``TOP_LOGPROBS`` counts as zero mass). An answer where neither
  side is among them, and every answer once the server has sent a reply without logprobs, is generated
  instead; both are logged and counted in ``results.json``.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
from dataclasses import replace

from tether.core.errors import DataError, TetherError
from tether.core.images import open_image
from tether.eval.concurrent import completed, progress_bar
from tether.eval.judges.client import ChatClient, JudgeError, RetryableReply
from tether.models.decoding import DecodingSettings

log = logging.getLogger(__name__)

TOP_LOGPROBS = 20  # the OpenAI API's maximum and vLLM's default --max-logprobs
YES_TOKENS = ("yes",)  # compared with each top token, stripped and lower-cased (the local YES_WORDS)
NO_TOKENS = ("no",)


def add_endpoint_options(parser, *, judges: bool = True) -> None:
    """``--endpoint``, ``--served-model`` and the request options, for every command that runs a model."""
    group = parser.add_argument_group("served model (instead of --model: an OpenAI-compatible endpoint)")
    group.add_argument("--endpoint", metavar="URL", help="base URL of the server, e.g. http://host:8000/v1")
    group.add_argument("--served-model", metavar="NAME", help="model name the endpoint serves")
    group.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the endpoint's API key (never written anywhere; not needed "
        "for a loopback server)",
    )
    group.add_argument(
        "--stop", action="append", default=[], metavar="TEXT", help="stop string sent to the endpoint"
    )
    group.add_argument(
        "--request-timeout", type=float, default=300.0, help="seconds to wait for one reply before retrying"
    )
    group.add_argument(
        "--max-retries", type=int, default=5, help="retries per request (429, 5xx, timeouts, bad replies)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight at once to the endpoint" + (" and to an LLM judge" if judges else ""),
    )


def endpoint_from_args(args) -> EndpointModel | None:
    """The endpoint model of ``--endpoint``/``--served-model``, or None when neither is given."""
    if not args.endpoint and not args.served_model:
        return None
    if not (args.endpoint and args.served_model):
        raise TetherError("--endpoint and --served-model go together")
    return EndpointModel(
        args.endpoint,
        args.served_model,
        api_key_env=args.api_key_env,
        stop=args.stop,
        timeout=args.request_timeout,
        max_retries=args.max_retries,
        concurrency=args.concurrency,
    )


def image_data_url(image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def user_message(image, prompt: str) -> list[dict]:
    """One user turn: the image (if any), then the question, in chat-completions content parts."""
    parts = [{"type": "image_url", "image_url": {"url": image_data_url(image)}}] if image is not None else []
    return [{"role": "user", "content": parts + [{"type": "text", "text": prompt}]}]


def request_params(settings: DecodingSettings, stop: list[str], row: int = 0) -> dict:
    """The chat-completions parameters that mean ``settings``."""
    if settings.num_beams != 1:
        raise TetherError("an endpoint does not do beam search; use --num-beams 1")
    params: dict = {"max_tokens": settings.max_new_tokens}
    if settings.do_sample:
        params.update(temperature=settings.temperature, top_p=settings.top_p)
        if settings.seed is not None:
            params["seed"] = settings.seed + row
        if settings.top_k:
            params.setdefault("extra_body", {})["top_k"] = settings.top_k
    else:
        params["temperature"] = 0.0
        if settings.seed is not None:
            params["seed"] = settings.seed
    if settings.repetition_penalty != 1.0:
        params.setdefault("extra_body", {})["repetition_penalty"] = settings.repetition_penalty
    if stop:
        params["stop"] = list(stop)
    return params


def _choice(data: dict) -> dict:
    try:
        choice = data["choices"][0]
        choice["message"]
    except (KeyError, IndexError, TypeError):
        raise RetryableReply("reply without choices[0].message") from None
    return choice


def yes_no_from_top_logprobs(top: list[dict]) -> str | None:
    """'Yes' or 'No' by the probability mass of the yes- and no-tokens among ``top`` (``{token, logprob}``
    entries); None when neither appears. A tie is 'No', as in the local fast mode (margin > 0 is yes)."""
    mass = {"yes": [], "no": []}
    for entry in top:
        word = str(entry.get("token", "")).strip().lower()
        side = "yes" if word in YES_TOKENS else "no" if word in NO_TOKENS else None
        if side is not None:
            mass[side].append(float(entry["logprob"]))
    if not mass["yes"] and not mass["no"]:
        return None
    yes, no = (_logsumexp(mass[side]) for side in ("yes", "no"))
    return "Yes" if yes - no > 0 else "No"


def _logsumexp(values: list[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


class EndpointModel:
    """A served model: ``generate`` for the pair pipelines, ``answer``/``yes_no`` per item for the runner."""

    def __init__(
        self,
        url: str,
        served_model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        stop: list[str] | None = None,
        timeout: float = 300.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        concurrency: int = 1,
    ):
        if concurrency < 1:
            raise TetherError(f"--concurrency must be >= 1, got {concurrency}")
        self.client = ChatClient(
            served_model,
            base_url=url,
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            role="served model",
        )
        self.served_model = served_model
        self.path = served_model  # what provenance records as the model (the local adapters' ``path``)
        self.api_key_env = api_key_env
        self.stop = list(stop or [])
        self.concurrency = concurrency
        self.reported_models: set[str] = set()
        self.logprobs_missing = False  # set once the server answered a logprobs request without them
        self.fast_generated = 0  # fast-mode answers that had to be generated
        self._lock = threading.Lock()
        # every request holds a slot: callers that nest thread pools (the pair pipeline's images, each with
        # several samples) still have at most ``concurrency`` requests in flight
        self._slots = threading.BoundedSemaphore(concurrency)

    # -- one request -------------------------------------------------------------------------------

    def _ask(self, image, prompt: str, params: dict, parse):
        def parse_and_note_model(data: dict):
            result = parse(data)
            if isinstance(data.get("model"), str):
                with self._lock:
                    self.reported_models.add(data["model"])
            return result

        messages = user_message(image, prompt)
        with self._slots:
            return self.client.chat(messages, parse_and_note_model, **params)

    def answer(self, image, prompt: str, settings: DecodingSettings, row: int = 0) -> str:
        """The generated reply, stripped like the local adapters' answers."""
        params = request_params(settings, self.stop, row)
        return self._ask(
            image, prompt, params, lambda data: (_choice(data)["message"]["content"] or "").strip()
        )

    def yes_no(self, image, prompt: str, settings: DecodingSettings) -> str:
        """Fast mode: the first token's top logprobs decide; generation when they cannot (see the module doc)."""
        if not self.logprobs_missing:
            params = {
                **request_params(replace(settings, do_sample=False, max_new_tokens=1), self.stop),
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
            }
            try:
                verdict = self._ask(image, prompt, params, _top_logprobs_verdict)
            except JudgeError as e:
                if e.status not in (400, 422):  # a server that rejects logprobs requests: generate instead
                    raise
                verdict = _NO_LOGPROBS
                log.warning("%s: logprobs request rejected (%s)", self.client.host, e)
            if verdict is _NO_LOGPROBS:
                with self._lock:
                    if not self.logprobs_missing:
                        log.warning(
                            "%s returns no logprobs: fast yes/no mode falls back to generation",
                            self.client.host,
                        )
                    self.logprobs_missing = True
            elif verdict is not None:
                return verdict
            else:
                log.info("%s: neither yes nor no among the top %d tokens; generating", prompt, TOP_LOGPROBS)
        with self._lock:
            self.fast_generated += 1
        return self.answer(image, prompt, settings)

    def generate(self, images, prompts, settings: DecodingSettings | None = None) -> list[str]:
        """One answer per (image, prompt), ``concurrency`` requests at a time, in input order."""
        if images is not None and len(images) != len(prompts):
            raise TetherError(f"{len(images)} images for {len(prompts)} prompts")
        settings = settings or DecodingSettings()
        rows = list(range(len(prompts)))
        image_of = (lambda row: images[row]) if images is not None else (lambda row: None)
        texts = dict(
            completed(
                lambda row: self.answer(image_of(row), prompts[row], settings, row), rows, self.concurrency
            )
        )
        return [texts[row] for row in rows]

    def record(self, mode: str | None = None, previous: dict | None = None) -> dict:
        """What results record about the endpoint: requested and reported model, host, request settings.
        ``previous`` (an earlier run's record) gives the reported model when this run asked nothing."""
        reported = ", ".join(sorted(self.reported_models)) or (previous or {}).get("reported_model")
        record = {
            "requested_model": self.served_model,
            "reported_model": reported,
            "host": self.client.host,
            "api_key_env": self.api_key_env,  # the variable's name, never its value
            "stop": self.stop,
            "concurrency": self.concurrency,
            "timeout": self.client.timeout,
            "max_retries": self.client.max_retries,
            "usage": self.client.usage.to_dict(),
        }
        if mode == "fast":
            record["fast_mode"] = (
                "generate (no logprobs from the server)" if self.logprobs_missing else "logprobs"
            )
            record["fast_answers_generated"] = self.fast_generated
        return record


_NO_LOGPROBS = object()


def _top_logprobs_verdict(data: dict):
    """'Yes'/'No' from the first token's top logprobs, None when they name neither, _NO_LOGPROBS without them."""
    logprobs = _choice(data).get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content or not isinstance(content, list) or not isinstance(content[0], dict):
        return _NO_LOGPROBS
    top = content[0].get("top_logprobs") or [content[0]]
    return yes_no_from_top_logprobs(top)


def endpoint_answers(
    endpoint: EndpointModel, items, images_root, settings, mode, skip_invalid, skips, progress
):
    """``(item, answer, None)`` as each request completes (no p(yes): a server's top logprobs give the
    verdict, not the full yes/no mass), ``endpoint.concurrency`` in flight; an unreadable image
    is an error naming the item, or with ``skip_invalid`` skipped and counted in ``skips``."""
    def ask(item):
        try:
            image = open_image(images_root, item.image)
        except DataError as e:
            if not skip_invalid:
                raise DataError(f"item '{item.id}': {e}") from None
            return _Skipped(f"item '{item.id}': {e}")
        if mode == "fast":
            return endpoint.yes_no(image, item.prompt, settings)
        return endpoint.answer(image, item.prompt, settings)

    with progress_bar(len(items), progress, "endpoint") as bar:
        for item, answer in completed(ask, items, endpoint.concurrency):
            bar.update(1)
            if isinstance(answer, _Skipped):
                skips.add(answer.reason)
                continue
            yield item, answer, None


class _Skipped:
    def __init__(self, reason: str):
        self.reason = reason
