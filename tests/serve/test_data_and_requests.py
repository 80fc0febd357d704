"""`tether data pairs|answer-pairs --endpoint` against a real `tether serve`, and what the server refuses."""

import json
import urllib.error
import urllib.request

import pytest

from tether.cli import main

from .served import SERVED_NAME


def endpoint_args(served, concurrency):
    return ["--endpoint", served.url, "--served-model", SERVED_NAME, "--concurrency", str(concurrency)]


def pairs_without_model_name(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["provenance"].pop("model")
    return records


def test_answer_pairs_through_the_endpoint_equal_the_local_model(world, served, served_checkpoint, tmp_path):
    lines = (world / "bench" / "pope" / "world_pope_random.jsonl").read_text().splitlines()[:30]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(lines) + "\n")
    common = [
        "--questions",
        str(questions),
        "--images",
        str(world / "images"),
        "--no-progress",
        "--select",
        "all",
    ]
    assert (
        main(
            ["data", "answer-pairs", str(served_checkpoint), *common, "--out", str(tmp_path / "local.jsonl")]
        )
        == 0
    )
    remote = tmp_path / "remote.jsonl"
    assert main(["data", "answer-pairs", *common, "--out", str(remote), *endpoint_args(served, 4)]) == 0
    assert pairs_without_model_name(remote) == pairs_without_model_name(tmp_path / "local.jsonl")
    run = json.loads(remote.with_suffix(".run.json").read_text())
    assert run["endpoint"]["fast_mode"] == "logprobs" and run["endpoint"]["reported_model"] == SERVED_NAME


def test_pairs_through_the_endpoint_do_not_depend_on_concurrency(world, served, tmp_path):
    """Sampled descriptions (a seed per request), judged by the world's rules: 1 or 4 images at a time write
    the same file, in image-list order."""
    outputs = []
    for concurrency in (1, 4):
        out = tmp_path / f"pairs{concurrency}.jsonl"
        args = ["data", "pairs", "--judge", "world", "--world", str(world), "--out", str(out), "--limit", "5"]
        args += ["--samples-per-image", "3", "--max-new-tokens", "12", "--no-progress"]
        assert main(args + endpoint_args(served, concurrency)) == 0
        outputs.append(out.read_text())
        run = json.loads(out.with_suffix(".run.json").read_text())
        assert run["model"] == f"{SERVED_NAME} at {served.url.split('/')[2]}" and run["finished"]
    assert outputs[0] == outputs[1] and outputs[0].count("\n") >= 1
    progress = (tmp_path / "pairs4.progress.jsonl").read_text().splitlines()
    assert len(progress) == 5


def post(served, body) -> tuple[int, dict]:
    request = urllib.request.Request(
        served.url + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


@pytest.mark.parametrize(
    "body, code, message",
    [
        ({"model": "other"}, 404, "this server serves 'tiny'"),
        ({"image": "http://example.com/a.png"}, 400, "nothing is fetched"),
        ({"image": "data:image/png;base64,AAAA"}, 400, "unreadable image"),
        ({"images": 2}, 400, "at most one image"),
        ({"n": 2}, 400, "only n=1"),
        ({"top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    ],
)
def test_the_server_refuses_what_it_cannot_answer(served, body, code, message):
    image = body.pop("image", PNG)
    parts = [{"type": "image_url", "image_url": {"url": image}}] * body.pop("images", 1)
    request = {
        "model": SERVED_NAME,
        "messages": [{"role": "user", "content": parts + [{"type": "text", "text": "hi"}]}],
    }
    if "top_logprobs" in body:
        request["logprobs"] = True
    status, reply = post(served, request | body)
    assert status == code and message in reply["error"]["message"]


def test_logprobs_are_those_of_the_generated_tokens(served):
    body = {"model": SERVED_NAME, "max_tokens": 3, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    body["messages"] = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}},
                                                     {"type": "text", "text": "is there a star ?"}]}]  # fmt: skip
    status, reply = post(served, body)
    assert status == 200
    content = reply["choices"][0]["logprobs"]["content"]
    assert 1 <= len(content) == reply["usage"]["completion_tokens"] <= 3
    for token in content:
        top = token["top_logprobs"]
        assert len(top) == 5 and top == sorted(top, key=lambda t: -t["logprob"])
        assert token["token"] == top[0]["token"] and token["logprob"] == top[0]["logprob"]  # greedy: the best
