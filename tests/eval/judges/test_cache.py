"""The reply cache: hits cost nothing, failures are never stored, damaged lines are reported and ignored."""

import hashlib
import json
import logging
import multiprocessing

import pytest

from chat_server import ok, status
from tether.eval.judges import ChatClient, ReplyCache, cache_key

CHAT = [{"role": "user", "content": "is there a dog"}]


def client_for(server, cache_dir, **kwargs) -> ChatClient:
    client = ChatClient(
        "judge-test", base_url=server.base_url, cache_dir=cache_dir, timeout=0.5, backoff=0.0, **kwargs
    )
    client._sleep = lambda seconds: None
    return client


def entry_line(key: str, reply: str) -> str:
    """A cache line written by hand from the documented format: checksum = sha256 of the other fields."""
    entry = {
        "key": key,
        "model": "judge-test",
        "reply": reply,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    blob = json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()
    return json.dumps(entry | {"checksum": hashlib.sha256(blob).hexdigest()}) + "\n"


def test_rerun_is_answered_from_the_cache_with_zero_requests(chat_server, tmp_path):
    server = chat_server(default=ok("rating: 5"))
    first = client_for(server, tmp_path)
    assert first.complete(CHAT) == "rating: 5"
    rerun = client_for(server, tmp_path)  # a new process would load the same file
    assert rerun.complete(CHAT) == "rating: 5"
    assert len(server.requests) == 1
    assert (rerun.usage.requests, rerun.usage.cache_hits, rerun.usage.prompt_tokens) == (0, 1, 0)
    assert "1 calls (1 from cache), 0 requests" in rerun.usage_report()
    # Settings that change the reply change the key: a new temperature asks the server again.
    client_for(server, tmp_path, temperature=0.7).complete(CHAT)
    assert len(server.requests) == 2


def test_failed_replies_are_never_stored(chat_server, tmp_path):
    from tether.eval.judges import JudgeError

    server = chat_server([status(500), status(500), status(400)])
    client = client_for(server, tmp_path, max_retries=1)
    with pytest.raises(JudgeError, match="HTTP 500"):
        client.complete(CHAT)
    with pytest.raises(JudgeError, match="HTTP 400"):
        client.complete(CHAT)
    assert not (tmp_path / "judge_cache.jsonl").exists()
    assert client.complete(CHAT) == "echo: is there a dog"  # the script is spent; now the server answers
    lines = (tmp_path / "judge_cache.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["reply"] == "echo: is there a dog"


def test_corrupted_lines_are_reported_with_file_and_line_and_ignored(chat_server, tmp_path, caplog):
    server = chat_server(default=ok("fresh"))
    key = cache_key("judge-test", {"temperature": 0.0, "max_tokens": 512}, CHAT)
    good = entry_line("other-key", "kept")
    tampered = entry_line(key, "rating: 6").replace("rating: 6", "rating: 0")
    path = tmp_path / "judge_cache.jsonl"
    path.write_text(good + tampered + entry_line(key, "stale")[:40] + "\n" + '["not", "an object"]\n')
    with caplog.at_level(logging.WARNING, logger="tether.eval.judges"):
        client = client_for(server, tmp_path)
    assert f"{path}:2: checksum mismatch" in caplog.text
    assert f"{path}:3: invalid JSONL record" in caplog.text
    assert f"{path}:4: invalid JSONL record" in caplog.text
    assert client.cache.corrupt_lines == 3 and list(client.cache.entries) == ["other-key"]
    assert client.complete(CHAT) == "fresh"  # the damaged entry for this prompt was not used
    assert len(server.requests) == 1
    assert len(ReplyCache(tmp_path)) == 2  # the fresh reply was appended after the damaged lines


def test_loading_ten_thousand_entries(tmp_path):
    path = tmp_path / "judge_cache.jsonl"
    path.write_text("".join(entry_line(f"key-{i}", f"reply {i}") for i in range(10_000)))
    cache = ReplyCache(tmp_path)
    assert len(cache) == 10_000 and cache.corrupt_lines == 0
    assert cache.get("key-9999")["reply"] == "reply 9999"


def _append_entries(cache_dir, worker: int, count: int) -> None:
    cache = ReplyCache(cache_dir)
    for i in range(count):
        cache.put(f"w{worker}-{i}", "judge-test", f"reply {worker} {i} " + "x" * 2000, {"prompt_tokens": i})


def test_two_processes_appending_do_not_interleave_lines(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_entries, args=(tmp_path, w, 100)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    cache = ReplyCache(tmp_path)
    assert len(cache) == 200 and cache.corrupt_lines == 0


def test_a_run_that_stops_keeps_every_finished_reply(chat_server, tmp_path):
    from tether.eval.judges import JudgeError

    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    server = chat_server([ok(), status(503), status(503)])
    client = client_for(server, tmp_path, max_retries=1)
    with pytest.raises(JudgeError, match="gave up after 2 attempts"):
        for chat in prompts:
            client.complete(chat)
    assert len(ReplyCache(tmp_path)) == 1
    rerun = client_for(server, tmp_path)
    assert [rerun.complete(chat) for chat in prompts] == [f"echo: question {i}" for i in range(3)]
    assert rerun.usage.cache_hits == 1 and rerun.usage.requests == 2
