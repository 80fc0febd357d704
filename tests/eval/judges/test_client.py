"""The judge client against a real chat-completions server on loopback, faults included."""

import logging
from pathlib import Path

import pytest

from chat_server import count_tokens, empty, hang, malformed, ok, status, truncated
from tether.core.config import load_config
from tether.eval.judges import ChatClient, JudgeConfig, JudgeError, make_client

SECRET = "sk-test-SECRET123"
CHAT = [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": "rate this answer"}]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TETHER_TEST_KEY", SECRET)


def client_for(server, **kwargs) -> ChatClient:
    """Short timeouts and no real waiting, so fault tests stay fast; waits are recorded instead."""
    settings = {"api_key_env": "TETHER_TEST_KEY", "timeout": 0.5, "max_retries": 3, "backoff": 0.01}
    client = ChatClient("judge-test", base_url=server.base_url, **(settings | kwargs))
    client.waits = []
    client._sleep = client.waits.append
    return client


def test_reply_headers_settings_and_usage(chat_server):
    server = chat_server()
    client = client_for(server, price_per_1k_input=0.01, price_per_1k_output=0.03, temperature=0.2)
    assert client.complete(CHAT) == "echo: rate this answer"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {SECRET}"
    assert request["body"]["model"] == "judge-test" and request["body"]["messages"] == CHAT
    assert request["body"]["temperature"] == 0.2 and request["body"]["max_tokens"] == 512
    host = server.base_url.split("/")[2]
    assert client.settings() == {
        "model": "judge-test",
        "base_url": host,
        "temperature": 0.2,
        "max_tokens": 512,
    }
    # Server's usage: "You are a judge. rate this answer" = 7 words; "echo: rate this answer" = 4 words.
    assert server.usage_sent == {"prompt_tokens": 7, "completion_tokens": 4}
    usage = client.usage
    assert (usage.calls, usage.requests, usage.retries, usage.cache_hits) == (1, 1, 0, 0)
    assert (usage.prompt_tokens, usage.completion_tokens) == (7, 4)
    assert usage.cost == pytest.approx(7 / 1000 * 0.01 + 4 / 1000 * 0.03)
    assert (
        "1 calls (0 from cache), 1 requests (0 retries), 7 prompt + 4 completion tokens"
        in client.usage_report()
    )


def test_reply_can_be_a_function_of_the_prompt(chat_server):
    server = chat_server(default=ok(lambda messages: f"rating: {len(messages[-1]['content'].split())}"))
    assert client_for(server).complete(CHAT) == "rating: 3"


@pytest.mark.parametrize(
    "fault, reason",
    [
        (status(429), "HTTP 429"),
        (status(500), "HTTP 500"),
        (status(503), "HTTP 503"),
        (hang(5.0), "no reply within 0.5 s"),
        (malformed(), "malformed JSON"),
        (truncated(), "cut off"),
        (empty(), "empty content"),
    ],
)
def test_each_fault_is_retried_then_succeeds(chat_server, caplog, fault, reason):
    server = chat_server([fault])
    client = client_for(server)
    with caplog.at_level(logging.WARNING, logger="tether.eval.judges"):
        assert client.complete(CHAT) == "echo: rate this answer"
    assert len(server.requests) == 2
    assert (client.usage.requests, client.usage.retries) == (2, 1)
    assert reason in caplog.text and "retry 1/3" in caplog.text
    # Only the successful reply is counted.
    assert client.usage.prompt_tokens == server.usage_sent["prompt_tokens"] == 7


def test_retries_are_bounded_and_the_error_names_server_model_and_status(chat_server):
    server = chat_server(default=status(503))
    client = client_for(server, max_retries=2)
    with pytest.raises(JudgeError) as error:
        client.complete(CHAT)
    message = str(error.value)
    assert "judge-test" in message and server.base_url.split("/")[2] in message
    assert "gave up after 3 attempts" in message and "HTTP 503" in message
    assert len(server.requests) == 3 and client.usage.requests == 3 and client.usage.retries == 2
    assert client.usage.calls == 0 and client.usage.prompt_tokens == 0


def test_hang_every_time_stops_with_a_timeout_error(chat_server):
    server = chat_server(default=hang(5.0))
    client = client_for(server, timeout=0.2, max_retries=1)
    with pytest.raises(JudgeError, match=r"gave up after 2 attempts; last failure: no reply within 0.2 s"):
        client.complete(CHAT)
    assert len(server.requests) == 2


@pytest.mark.parametrize("code", [400, 401, 404])
def test_client_errors_are_not_retried(chat_server, code):
    server = chat_server(default=status(code, message="model does not exist"))
    client = client_for(server)
    with pytest.raises(
        JudgeError, match=rf"judge 'judge-test' at 127\.0\.0\.1:\d+: HTTP {code}: model does not"
    ):
        client.complete(CHAT)
    assert len(server.requests) == 1 and client.usage.retries == 0


def test_backoff_is_exponential_with_jitter_and_honours_retry_after(chat_server):
    server = chat_server([status(500), status(500), status(500), status(429, retry_after="7")])
    client = client_for(server, backoff=1.0, max_retries=4)
    assert client.complete(CHAT) == "echo: rate this answer"
    first, second, third, fourth = client.waits
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 2.0 <= third <= 4.0
    # the backoff alone would be backoff * 2^3 * jitter in [4, 8]; Retry-After (7 s) is a floor under it
    assert 7.0 <= fourth <= 8.0
    assert len(server.requests) == 5


def test_retry_after_as_http_date_and_milliseconds():
    from tether.eval.judges.client import _retry_after_seconds

    assert _retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert _retry_after_seconds({"retry-after": "3"}) == 3.0
    assert _retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert _retry_after_seconds({"retry-after": "soon"}) is None
    assert _retry_after_seconds({}) is None


def test_the_api_key_never_leaks(chat_server, caplog, tmp_path):
    # The 401 message echoes the Authorization header, as some proxies do.
    script = [status(500), malformed(), ok()]
    server = chat_server(script, default=status(401, message="bad key {authorization}"))
    client = client_for(server, cache_dir=tmp_path)
    texts = []
    with caplog.at_level(logging.DEBUG):
        client.complete(CHAT)
        assert client.complete(CHAT)  # from the cache
        with pytest.raises(JudgeError) as error:
            client.complete([{"role": "user", "content": "another"}])
        texts.append(str(error.value))
        assert "bad key Bearer ***" in str(error.value)
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # it did reach the server
    texts += [
        caplog.text,
        *(str(record.args) for record in caplog.records),
        (tmp_path / "judge_cache.jsonl").read_text(),
        repr(client.settings()),
        client.usage_report(),
        repr(client.usage),
        repr(client),
    ]
    assert all(SECRET not in text and "SECRET123" not in text for text in texts)


def test_missing_key_is_an_error_for_remote_servers_only(chat_server, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(JudgeError, match="set the environment variable NO_SUCH_KEY_VAR"):
        ChatClient("gpt-4o", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(JudgeError, match="judge 'gpt-4o' at example.com:8000: no API key"):
        ChatClient("gpt-4o", base_url="http://example.com:8000/v1", api_key_env="NO_SUCH_KEY_VAR")
    server = chat_server()
    client = ChatClient("local-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY_VAR")
    assert client.complete(CHAT) == "echo: rate this answer"
    assert server.requests[0]["headers"]["authorization"] == "Bearer not-needed-for-local-server"


def test_bad_messages_and_base_url_are_clear_errors():
    with pytest.raises(JudgeError, match="base_url must look like"):
        ChatClient("m", base_url="127.0.0.1:8000")
    client = ChatClient("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(JudgeError, match="non-empty list"):
        client.complete([])
    with pytest.raises(JudgeError, match="message 0 must be a dict"):
        client.complete([{"text": "hi"}])


def test_accounting_adds_up_over_many_calls(chat_server, tmp_path):
    server = chat_server([status(429), empty()])
    client = client_for(server, cache_dir=tmp_path, price_per_1k_input=2.5, price_per_1k_output=10.0)
    prompts = [[{"role": "user", "content": "word " * n}] for n in range(1, 6)]
    replies = [client.complete(chat) for chat in prompts + prompts[:2]]
    assert replies[5:] == replies[:2]
    sent = server.usage_sent
    assert sent == {"prompt_tokens": 15, "completion_tokens": sum(1 + n for n in range(1, 6))}
    usage = client.usage
    assert (usage.calls, usage.cache_hits, usage.requests, usage.retries) == (7, 2, 7, 2)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        sent["prompt_tokens"],
        sent["completion_tokens"],
    )
    assert usage.cost == pytest.approx(15 * 2.5 / 1000 + 20 * 10.0 / 1000)
    assert count_tokens("echo: word word") == 3


def test_make_client_from_yaml(tmp_path, chat_server):
    server = chat_server()
    recipe = tmp_path / "judge.yaml"
    recipe.write_text(f"model: judge-test\nbase_url: {server.base_url}\nmax_tokens: 64\ntimeout: 5\n")
    config = load_config(JudgeConfig, recipe, ["temperature=0.5", f"cache_dir={tmp_path / 'cache'}"])
    client = make_client(config)
    assert client.settings()["max_tokens"] == 64 and client.temperature == 0.5 and client.timeout == 5.0
    assert client.complete(CHAT) == "echo: rate this answer"
    assert (tmp_path / "cache" / "judge_cache.jsonl").is_file()
    with pytest.raises(JudgeError, match="judge model is not set"):
        make_client(JudgeConfig())


def test_shipped_judge_recipes_load():
    root = Path(__file__).resolve().parents[3] / "configs" / "judges"
    openai_judge = load_config(JudgeConfig, root / "openai_gpt4o.yaml")
    assert openai_judge.model == "gpt-4o-2024-08-06" and openai_judge.base_url is None
    assert openai_judge.price_per_1k_output == 0.01
    local = load_config(JudgeConfig, root / "vllm_local.yaml")
    assert local.base_url == "http://127.0.0.1:8000/v1" and local.timeout == 120.0
