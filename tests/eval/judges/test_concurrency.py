"""Served-model and judge requests under concurrency against the loopback fault server: 429 storms, hangs,
malformed JSON; answers complete and written once, token accounting adds up across threads."""

import json
import logging
import threading

import pytest
from PIL import Image

from chat_server import hang, malformed, ok, status
from tether.eval.concurrent import completed
from tether.eval.endpoint import EndpointModel
from tether.eval.judge_protocol import LLMJudge
from tether.eval.registry import get_benchmark
from tether.eval.runner import read_finished, run_benchmark

SECRET = "sk-test-SECRET123"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TETHER_TEST_KEY", SECRET)


def pope(tmp_path, n_images=6):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i in range(n_images):
        Image.new("RGB", (16, 16), ["red", "blue", "green"][i % 3]).save(images / f"img{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no")):
            rows.append({"question_id": len(rows) + 1, "image": f"img{i}.png", "text": f"Is there a {shape}?",
                         "label": label})  # fmt: skip
    path = tmp_path / "pope.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return get_benchmark("pope").load_items(path), images


def says_yes_to_squares(messages):
    text = [p["text"] for p in messages[-1]["content"] if p["type"] == "text"][0]
    return "Yes" if "square" in text else "No"


def endpoint_for(server, **options):
    settings = {"api_key_env": "TETHER_TEST_KEY", "timeout": 2.0, "max_retries": 12, "backoff": 0.001}
    return EndpointModel(server.base_url, "judge-test", **(settings | options))


def test_faults_under_concurrency_lose_nothing_and_ask_nothing_twice(chat_server, tmp_path, caplog):
    items, images = pope(tmp_path)
    faults = [status(429, retry_after="0")] * 12 + [malformed()] * 3 + [hang(5.0)] * 2 + [status(503)] * 3
    server = chat_server(faults, default=ok(says_yes_to_squares))
    endpoint = endpoint_for(server, concurrency=8)
    with caplog.at_level(logging.WARNING, logger="tether.eval.judges"):
        score = run_benchmark(
            get_benchmark("pope"), items, images_root=images, out_dir=tmp_path / "out",
            decoding={"max_new_tokens": 4, "seed": 0}, progress=False, endpoint=endpoint,
        )  # fmt: skip
    assert score.metrics["accuracy"] == 1.0  # every answer arrived and belongs to its question
    answered = [r for r in server.requests if r["body"] and "messages" in r["body"]]
    usage = endpoint.client.usage
    # one call per item; each fault cost a retry (a loaded machine may time out a slow reply too)
    assert usage.calls == len(items) and usage.retries >= len(faults)
    assert usage.requests == usage.calls + usage.retries >= len(answered)
    assert usage.completion_tokens == server.usage_sent["completion_tokens"] == len(items)
    assert (
        "HTTP 429" in caplog.text and "malformed JSON" in caplog.text and "no reply within 2 s" in caplog.text
    )
    body = answered[-1]["body"]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 4 and body["seed"] == 0
    image_part = body["messages"][0]["content"][0]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert all(r["headers"]["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    assert not any(SECRET in p.read_text() for p in (tmp_path / "out").iterdir())  # the key is never written
    assert SECRET not in caplog.text
    written = (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in written) == sorted(i.id for i in items)


def test_rerun_asks_only_for_missing_answers(chat_server, tmp_path):
    from tether.core.fingerprints import MARKER, claim_output
    from tether.eval.run_identity import answer_inputs, endpoint_identity
    from tether.models.decoding import DecodingSettings
    from tether.models.placement import ModelLoadSettings

    items, images = pope(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    done = {
        item.id: says_yes_to_squares([{"content": [{"type": "text", "text": item.prompt}]}])
        for item in items[:5]
    }
    server = chat_server(default=ok(says_yes_to_squares))
    endpoint = endpoint_for(server, concurrency=4)
    # the folder of an interrupted run of these inputs: its record, then the answers it had saved
    inputs = answer_inputs(
        get_benchmark("pope"), items, endpoint.path, None, images, "generate", "hf",
        DecodingSettings(max_new_tokens=4), None, ModelLoadSettings(),
    ) | {"backend": "endpoint", "endpoint": endpoint_identity(endpoint)}  # fmt: skip
    claim_output(out / MARKER, inputs, produced=[], what="answers")
    (out / "samples.jsonl").write_text(
        "".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in done.items())
    )
    run_benchmark(
        get_benchmark("pope"), items, images_root=images, out_dir=out, decoding={"max_new_tokens": 4},
        progress=False, endpoint=endpoint, load_settings=ModelLoadSettings(),
    )  # fmt: skip
    assert len(server.requests) == len(items) - 5  # only the missing ones were asked


def test_fast_mode_without_logprobs_falls_back_to_generation_and_says_so(chat_server, tmp_path, caplog):
    items, images = pope(tmp_path, n_images=2)
    server = chat_server(default=ok(says_yes_to_squares))  # replies carry no logprobs
    with caplog.at_level(logging.WARNING, logger="tether.eval.endpoint"):
        score = run_benchmark(
            get_benchmark("pope"), items, images_root=images, out_dir=tmp_path / "out", mode="fast",
            progress=False, endpoint=endpoint_for(server, concurrency=2),
        )  # fmt: skip
    assert score.metrics["accuracy"] == 1.0
    record = json.loads((tmp_path / "out" / "results.json").read_text())["extra"]["endpoint"]
    assert record["fast_mode"] == "generate (no logprobs from the server)"
    assert record["fast_answers_generated"] == len(items)
    assert "returns no logprobs" in caplog.text
    assert server.requests[0]["body"]["logprobs"] is True and server.requests[0]["body"]["top_logprobs"] == 20


def test_judge_requests_concurrent_give_the_same_scores_and_add_up(chat_server, tmp_path):
    """MMHal answers already on disk: the run only asks the judge, 8 at a time, through 429s and hangs."""
    from tether.core.fingerprints import MARKER, claim_output
    from tether.eval.judges import ChatClient
    from tether.eval.run_identity import answer_inputs
    from tether.models.decoding import DecodingSettings

    template = [
        {"question_type": "attribute", "question_topic": "t", "image_id": f"i{k}", "image_src": f"img{k}.png",
         "image_content": ["ball"], "question": f"What colour is ball {k}?", "gt_answer": "red",
         "model_answer": ""}
        for k in range(12)
    ]  # fmt: skip
    (tmp_path / "mmhal.json").write_text(json.dumps(template))
    bench = get_benchmark("mmhal")
    items = bench.load_items(tmp_path / "mmhal.json")
    scores = {}
    for concurrency in (1, 8):
        out = tmp_path / f"out{concurrency}"
        out.mkdir()
        (out / "samples.jsonl").write_text(
            "".join(
                json.dumps({"id": item.id, "answer": f"answer {n}"}) + "\n" for n, item in enumerate(items)
            )
        )
        faults = [status(429)] * 4 + [hang(5.0)]
        server = chat_server(faults, default=ok(lambda m: f"rating: {len(m[-1]['content']) % 7}"))
        client = ChatClient("judge-test", base_url=server.base_url, api_key_env="TETHER_TEST_KEY", timeout=2.0,
                            max_retries=8, backoff=0.001)  # fmt: skip
        # the answers are those of an earlier run of these inputs (no model): its record goes with them
        inputs = answer_inputs(bench, items, None, None, tmp_path, "generate", "hf", DecodingSettings(), LLMJudge(client))
        claim_output(out / MARKER, inputs, produced=[], what="answers")
        score = run_benchmark(bench, items, images_root=tmp_path, out_dir=out, judge=LLMJudge(client),
                              progress=False, concurrency=concurrency)  # fmt: skip
        scores[concurrency] = score.metrics
        assert client.usage.calls == len(items) and client.usage.retries >= len(faults)
        assert client.usage.prompt_tokens == server.usage_sent["prompt_tokens"]
        assert client.usage.completion_tokens == server.usage_sent["completion_tokens"]
        assert len(read_finished(out / "samples.jsonl")) == len(items)
    assert scores[1] == scores[8]


def test_completed_bounds_tasks_in_flight_and_stops_after_a_failure():
    in_flight, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(4)

    def task(n):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        if n < 4:
            barrier.wait(timeout=30)  # the first four are in flight together
        with lock:
            in_flight[0] -= 1
        return n * n

    assert sorted(completed(task, range(20), 4)) == [(n, n * n) for n in range(20)]
    assert peak[0] == 4

    started = []

    def failing(n):
        started.append(n)
        if n == 2:
            raise ValueError("no")
        return n

    results = []
    with pytest.raises(ValueError):
        for item in completed(failing, range(100), 3):
            results.append(item)
    assert len(started) < 100 and 2 not in [n for n, _ in results]


def test_llm_negatives_with_concurrency_equal_sequential_and_account_every_call(chat_server):
    from tether.core.io import SkipLog
    from tether.data.negatives import CaptionRecord, make_negatives
    from tether.data.negatives_llm import LLMRewriter
    from tether.eval.judges import ChatClient

    def rewrite(messages):  # the caption's number + 1, or a useless reply for every third caption
        number = int(messages[-1]["content"].split("Caption: ")[-1].split()[1])
        if number % 3 == 0:
            return "I cannot do that."
        return json.dumps({"negative": f"Dogs {number + 1} on the left.", "kinds": ["count"]})

    records = [CaptionRecord(f"{n}.png", f"Dogs {n} on the left.") for n in range(24)]
    rows, skipped = {}, {}
    for concurrency in (1, 8):
        server = chat_server([status(429), hang(5.0)], default=ok(rewrite))
        client = ChatClient("judge-test", base_url=server.base_url, api_key_env="TETHER_TEST_KEY", timeout=2.0,
                            max_retries=5, backoff=0.001)  # fmt: skip
        skips = SkipLog()
        rows[concurrency] = make_negatives(records, LLMRewriter(client), skips=skips, concurrency=concurrency)
        skipped[concurrency] = skips.reasons
        assert client.usage.calls == len(records)
        assert client.usage.completion_tokens == server.usage_sent["completion_tokens"]
    assert rows[1] == rows[8] and len(rows[1]) == 16
    assert skipped[1] == skipped[8] and len(skipped[1]) == 8
