"""`tether serve --model DIR`: an OpenAI-compatible chat-completions server for any checkpoint tether loads.

Serve a tuned model to a remote evaluation (``tether eval <bench> run --endpoint``), or a local model as
a judge. Built on FastAPI + uvicorn (``pip install tether[serve]``). It speaks the parts of the API that
evaluation uses:

- ``POST /v1/chat/completions``: one user turn with at most one image, as a base64 ``data:`` URL (remote
  URLs are refused: the server fetches nothing), a system message folded in front of the user text (the
  checkpoint's template is applied to one user turn, as in every tether run); ``max_tokens``,
  ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``repetition_penalty``, ``seed``, ``stop``, and
  ``logprobs`` / ``top_logprobs`` (log-probabilities of each generated token under the raw logits);
- ``GET /v1/models`` and ``GET /health``.

Concurrent requests are batched: a single worker thread owns the model and takes every request waiting
when it is free (up to ``--max-batch-size``), grouped by decoding settings, into one left-padded
``generate`` (batched answers equal batch-of-one answers). A sampled request with a seed runs alone, so
its reply does not depend on what else arrived. The server binds to loopback by default and has no
authentication: bind it elsewhere only on a network you trust.
"""

import argparse
import base64
import binascii
import io
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

from tether.core.errors import TetherError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_TOP_LOGPROBS = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a checkpoint as an OpenAI-compatible chat-completions endpoint",
        description="Serve a checkpoint tether loads on POST /v1/chat/completions (images as base64 data "
        "URLs, logprobs on request), batching concurrent requests. Binds to 127.0.0.1 unless --host says "
        "otherwise; there is no authentication. Needs `pip install tether[serve]`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="checkpoint folder (as for tether eval run --model)")
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (loopback: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--served-model-name", help="model name clients send and replies report (default: the folder name)"
    )
    parser.add_argument("--max-batch-size", type=int, default=8, help="requests generated together")
    parser.add_argument("--dtype", default="float32", help="weights dtype (float32, bfloat16, float16)")
    parser.add_argument("--device", help="torch device (default: where the model loads)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the model")
    parser.set_defaults(handler=_serve)


def _serve(args) -> int:
    from pathlib import Path

    uvicorn = _import_server_libraries()[1]
    from tether.models import load

    if args.max_batch_size < 1:
        raise TetherError("--max-batch-size must be >= 1")
    name = args.served_model_name or Path(args.model).resolve().name
    vlm = load(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    if args.host not in (LOOPBACK, "localhost", "::1"):
        log.warning("binding to %s: anyone who can reach this address can use the model", args.host)
    app = create_app(vlm, name, max_batch_size=args.max_batch_size)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _import_server_libraries():
    try:
        import fastapi
        import uvicorn
    except ImportError as e:
        raise TetherError(
            f"tether serve needs FastAPI and uvicorn ({e}); pip install tether[serve]"
        ) from None
    return fastapi, uvicorn


# ---- requests ------------------------------------------------------------------------------------------


class RequestError(Exception):
    """A request the server cannot answer; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One parsed request, waiting for the worker."""

    image: object  # a PIL image or None
    prompt: str
    settings: object  # DecodingSettings
    stop: list[str]
    top_logprobs: int | None  # None: no logprobs asked
    future: Future = field(default_factory=Future)

    def batch_key(self) -> tuple:
        """Jobs with equal keys are generated in one batch."""
        s = self.settings
        # greedy output does not depend on the seed; a sampled one depends on the batch, so a seeded
        # sampled request is its own batch
        alone = id(self) if s.do_sample and s.seed is not None else None
        sampling = (s.temperature, s.top_p, s.top_k) if s.do_sample else None
        return (
            self.image is None,
            s.max_new_tokens,
            s.repetition_penalty,
            sampling,
            alone,
            self.top_logprobs,
        )


def parse_request(body: dict, served_name: str) -> Job:
    """Validate a chat-completions body into a Job; RequestError names what is wrong."""
    from tether.models.decoding import DecodingSettings

    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    if body.get("model") != served_name:
        raise RequestError(
            f"model '{body.get('model')}' is not served here; this server serves '{served_name}'", 404
        )
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported")
    image, prompt = _one_turn(body.get("messages"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else float(temperature)
    seed = body.get("seed")
    settings = DecodingSettings(
        max_new_tokens=_positive_int(max_tokens, "max_tokens"),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=float(body.get("top_p") or 1.0),
        top_k=int(body.get("top_k") or 0),
        repetition_penalty=float(body.get("repetition_penalty") or 1.0),
        seed=int(seed) if seed is not None else None,
    )
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise RequestError("stop must be a string or a list of non-empty strings")
    top_logprobs = None
    if body.get("logprobs"):
        top_logprobs = int(body.get("top_logprobs") or 0)
        if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise RequestError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
    return Job(image, prompt, settings, stop, top_logprobs)


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or value < 1:
        raise RequestError(f"{name} must be a positive integer")
    return value


def _one_turn(messages) -> tuple[object, str]:
    """(image or None, text) of one user turn, a system message's text put in front."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles not in (["user"], ["system", "user"]):
        raise RequestError("tether serve answers one user turn, optionally after one system message")
    texts, images = [], []
    for message in messages:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise RequestError("message content must be a string or a list of parts")
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url" and message["role"] == "user":
                url = part.get("image_url", {})
                images.append(_decode_image(url.get("url") if isinstance(url, dict) else url))
            else:
                raise RequestError(f"unsupported content part {kind!r} in a {message['role']} message")
    if len(images) > 1:
        raise RequestError("at most one image per request")
    return (images[0] if images else None), "\n\n".join(texts)


def _decode_image(url):
    """A ``data:image/...;base64,`` URL as an RGB PIL image, with tether's size limit."""
    from PIL import Image, UnidentifiedImageError

    from tether.core.images import MAX_IMAGE_PIXELS

    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise RequestError("images must be base64 data URLs (data:image/png;base64,...); nothing is fetched")
    try:
        raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise RequestError(f"image of {img.width}x{img.height} is over the size limit")
            return img.convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise RequestError(f"unreadable image ({type(e).__name__})") from None


# ---- batching and generation -----------------------------------------------------------------------------


class Batcher:
    """Owns the model: one worker thread generates every waiting job, batched by decoding settings."""

    def __init__(self, vlm, max_batch_size: int = 8):
        self.vlm = vlm
        self.max_batch_size = max_batch_size
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tether-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        self._jobs.put(job)
        return job.future

    def _work(self) -> None:
        while True:
            waiting = [self._jobs.get()]
            while len(waiting) < self.max_batch_size:
                try:
                    waiting.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list[Job]] = {}
            for job in waiting:
                groups.setdefault(job.batch_key(), []).append(job)
            for jobs in groups.values():
                self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        try:
            replies = generate_replies(self.vlm, jobs)
        except Exception as e:  # a model error answers the requests, it must not stop the worker
            log.exception("generation failed for a batch of %d", len(jobs))
            for job in jobs:
                job.future.set_exception(e)
            return
        for job, reply in zip(jobs, replies):
            job.future.set_result(reply)


def generate_replies(vlm, jobs: list[Job]) -> list[dict]:
    """Generate one batch of jobs (equal batch keys); per job its text, finish reason, token counts and,
    when asked, the logprobs of each generated token."""
    import torch

    first = jobs[0]
    images = None if first.image is None else [job.image for job in jobs]
    new_ids, logits, prompt_lengths = vlm.generate_ids(
        images, [job.prompt for job in jobs], first.settings, output_logits=first.top_logprobs is not None
    )
    logprobs = torch.log_softmax(logits.float(), dim=-1) if logits is not None else None
    replies = []
    for row, job in enumerate(jobs):
        ids = new_ids[row].tolist()
        finished = vlm.eos_token_id in ids
        ids = ids[: ids.index(vlm.eos_token_id)] if finished else ids
        text = vlm.tokenizer.decode(ids, skip_special_tokens=True).strip()
        text, stopped = _cut_at_stop(text, job.stop)
        reply = {
            "text": text,
            "finish_reason": "stop" if finished or stopped else "length",
            "prompt_tokens": int(prompt_lengths[row]),
            "completion_tokens": len(ids),
        }
        if logprobs is not None:
            reply["logprobs"] = _token_logprobs(vlm.tokenizer, ids, logprobs[row], job.top_logprobs)
        replies.append(reply)
    return replies


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """The text before the first stop string (OpenAI's semantics: the stop string is not returned)."""
    cuts = [text.index(s) for s in stop if s in text]
    return (text[: min(cuts)].rstrip(), True) if cuts else (text, False)


def _token_logprobs(tokenizer, ids: list[int], logprobs, top: int) -> dict:
    """OpenAI's ``logprobs`` object: per generated token its text, logprob and the ``top`` alternatives."""
    import torch

    def entry(token_id: int, value: float) -> dict:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    content = []
    for step, token_id in enumerate(ids):
        item = entry(token_id, float(logprobs[step, token_id]))
        values, indices = torch.topk(logprobs[step], top) if top else (torch.empty(0), torch.empty(0))
        item["top_logprobs"] = [entry(int(i), float(v)) for v, i in zip(values.tolist(), indices.tolist())]
        content.append(item)
    return {"content": content}


# ---- the app -----------------------------------------------------------------------------------------------


def create_app(vlm, served_name: str, max_batch_size: int = 8):
    """The FastAPI app serving ``vlm`` as ``served_name``."""
    import asyncio

    fastapi = _import_server_libraries()[0]
    from fastapi import Request  # a real class, not a string: FastAPI reads the annotation
    from fastapi.responses import JSONResponse

    app = fastapi.FastAPI(title="tether serve", docs_url=None, redoc_url=None)
    batcher = Batcher(vlm, max_batch_size)
    app.state.batcher = batcher

    def error(message: str, status: int) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served_name, "object": "model", "owned_by": "tether"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return error("the body is not valid JSON", 400)
        try:
            job = parse_request(body, served_name)
        except (RequestError, TypeError, ValueError) as e:
            return error(str(e), getattr(e, "status", 400))
        try:
            reply = await asyncio.wrap_future(batcher.submit(job))
        except Exception as e:
            return error(f"generation failed: {type(e).__name__}: {e}", 500)
        return completion_response(served_name, reply)

    return app


def completion_response(served_name: str, reply: dict) -> dict:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": reply["text"]},
        "finish_reason": reply["finish_reason"],
        "logprobs": reply.get("logprobs"),
    }
    tokens = {"prompt_tokens": reply["prompt_tokens"], "completion_tokens": reply["completion_tokens"]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served_name,
        "choices": [choice],
        "usage": {**tokens, "total_tokens": sum(tokens.values())},
    }
