"""A real chat-completions server on loopback, scriptable per request, for testing the judge client.

It speaks ``POST /v1/chat/completions`` like the OpenAI API (response JSON with ``choices`` and ``usage``)
and can answer each request with a fault: 429 with Retry-After, 500/503, a hang past the client's
timeout, malformed JSON, a truncated body, an empty content, or any status. Every request received is
recorded (headers and body) so tests can check what reached the wire and how many attempts were made.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """How to answer one request. ``kind``: ok, status, hang, malformed, truncated, empty, not_json."""

    kind: str = "ok"
    text: str | Callable[[list[dict]], str] | None = None  # ok: the reply, or a function of the messages
    status: int = 200  # status: the HTTP status to send
    retry_after: str | None = None  # status: the Retry-After header value, if any
    seconds: float = 0.0  # hang: how long to wait before answering ok
    message: str = ""  # status: error message; "{authorization}" is replaced by the header received


def ok(text=None) -> Answer:
    return Answer("ok", text=text)


def status(code: int, retry_after: str | None = None, message: str = "") -> Answer:
    return Answer("status", status=code, retry_after=retry_after, message=message)


def hang(seconds: float) -> Answer:
    return Answer("hang", seconds=seconds)


def malformed() -> Answer:
    return Answer("malformed")


def truncated() -> Answer:
    return Answer("truncated")


def empty() -> Answer:
    return Answer("empty")


def count_tokens(text: str) -> int:
    """The server's 'tokenizer': whitespace words, so tests can compute usage by hand."""
    return len(text.split())


class ChatServer:
    """Run with ``with ChatServer() as server:``; ``server.base_url`` is ``http://127.0.0.1:PORT/v1``.

    ``script`` answers the first requests in order; after it runs out, ``default`` answers. The reply
    text of an ok answer defaults to ``"echo: <last user message>"``.
    """

    def __init__(self, script: list[Answer] | None = None, default: Answer | None = None, model="judge-test"):
        self.script = list(script or [])
        self.default = default or ok()
        self.model = model
        self.requests: list[dict] = []  # {"path", "headers", "body"} per request received
        self.usage_sent = {"prompt_tokens": 0, "completion_tokens": 0}  # summed over ok replies
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes hanging handlers at shutdown
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_answer(self) -> Answer:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _completion(self, body: dict, content) -> tuple[dict, dict]:
        messages = body.get("messages", [])
        prompt = " ".join(m.get("content", "") for m in messages if isinstance(m.get("content"), str))
        usage = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(content or "")}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        response = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return response, usage

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, payload: bytes, headers: dict | None = None, length=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                if self.path != "/v1/chat/completions" or not isinstance(body, dict):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                answer = server._next_answer()
                if answer.kind == "hang":
                    if server._stopping.wait(answer.seconds):
                        return
                    answer = ok()
                if answer.kind == "status":
                    message = answer.message or f"scripted status {answer.status}"
                    message = message.replace("{authorization}", self.headers.get("Authorization", ""))
                    error = {"error": {"message": message, "type": "test"}}
                    headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
                    self._send(answer.status, json.dumps(error).encode(), headers)
                elif answer.kind == "malformed":
                    self._send(200, b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "rat')
                elif answer.kind == "truncated":
                    # Promise more bytes than are sent, then close: the client sees a cut-off body.
                    payload = json.dumps(self._ok_payload(body, "cut off")[0]).encode()
                    self._send(200, payload[: len(payload) // 2], length=len(payload))
                    self.close_connection = True
                elif answer.kind == "empty":
                    payload, _ = server._completion(body, None)
                    self._send(200, json.dumps(payload).encode())
                else:
                    text = answer.text
                    if callable(text):
                        text = text(body["messages"])
                    if text is None:
                        last_user = [m for m in body["messages"] if m.get("role") == "user"][-1]
                        text = f"echo: {last_user['content']}"
                    payload, usage = self._ok_payload(body, text)
                    with server._lock:
                        for name in server.usage_sent:
                            server.usage_sent[name] += usage[name]
                    self._send(200, json.dumps(payload).encode())

            def _ok_payload(self, body, text):
                return server._completion(body, text)

        return Handler
