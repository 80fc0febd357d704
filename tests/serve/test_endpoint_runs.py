"""Evaluation through a real `tether serve` process on loopback against the same model in process."""

import json
import threading
import time

import pytest

from tether.eval.endpoint import EndpointModel
from tether.eval.judges import JudgeError
from tether.eval.registry import get_benchmark
from tether.eval.runner import read_finished, run_benchmark
from tether.study.evaluate import world_benchmarks
from tether.world.judge import WorldRuleJudge

from .served import SERVED_NAME, Served

DECODING = {"max_new_tokens": 12, "batch_size": 8, "seed": 0}
# the world's exports of all six benchmarks, the first items of each (MME: whole image pairs)
LIMITS = {"pope_random": 12, "chair": 4, "mme": 8, "amber_discriminative": 10, "mmhal": 4, "shr": 4}


@pytest.fixture(scope="module")
def vlm(served_checkpoint):
    from tether.models import load

    return load(served_checkpoint)


def world_items(world, name: str, limit: int):
    bench_name, data_file, options = world_benchmarks(world)[name]
    benchmark = get_benchmark(bench_name)
    images_root = data_file if bench_name == "mme" else world / "images"
    return benchmark, benchmark.load_items(data_file, **options)[:limit], images_root


def run(world, name, out, *, limit, mode="generate", **model):
    benchmark, items, images_root = world_items(world, name, limit)
    judge = WorldRuleJudge(world) if benchmark.needs_judge else None
    score = run_benchmark(
        benchmark, items, images_root=images_root, out_dir=out, decoding=dict(DECODING), mode=mode,
        judge=judge, progress=False, **model,
    )  # fmt: skip
    # the scored per-sample records (answers and what scoring made of them)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return score, records, json.loads((out / "results.json").read_text())


def items_of(world, name):
    return world_items(world, name, LIMITS[name])[1]


def endpoint(served, concurrency=4, **options):
    return EndpointModel(served.url, SERVED_NAME, concurrency=concurrency, backoff=0.01, **options)


@pytest.mark.parametrize("name", list(LIMITS))
def test_endpoint_run_equals_in_process_run(name, world, served, vlm, tmp_path):
    """Greedy answers through the server (4 requests in flight, batched there) equal the in-process
    answers (batches of 8), and so do the metrics; results.json records the endpoint."""
    local_score, local_answers, _ = run(world, name, tmp_path / "local", limit=LIMITS[name], vlm=vlm)
    remote = endpoint(served)
    score, answers, results = run(world, name, tmp_path / "remote", limit=LIMITS[name], endpoint=remote)
    assert answers == local_answers
    assert score.metrics == local_score.metrics
    record = results["extra"]["endpoint"]
    assert record["requested_model"] == record["reported_model"] == SERVED_NAME
    assert record["host"] == served.url.split("/")[2] and record["concurrency"] == 4
    assert results["model"] == SERVED_NAME and results["decoding"]["backend"] == "endpoint"
    assert record["usage"]["calls"] == len(items_of(world, name)) and record["usage"]["retries"] == 0


def test_fast_mode_over_logprobs_agrees_with_in_process_fast_mode(world, served, vlm, tmp_path):
    _, local, _ = run(world, "pope_random", tmp_path / "local", limit=40, mode="fast", vlm=vlm)
    _, remote, results = run(
        world, "pope_random", tmp_path / "remote", limit=40, mode="fast", endpoint=endpoint(served)
    )
    record = results["extra"]["endpoint"]
    assert record["fast_mode"] == "logprobs" and record["fast_answers_generated"] == 0
    # p(yes) is the local fast mode's full yes/no mass; a server's top logprobs give only the verdict
    assert all("p_yes" in r for r in local) and not any("p_yes" in r for r in remote)
    assert remote == [{k: v for k, v in r.items() if k != "p_yes"} for r in local]
    assert {r["answer"] for r in local} == {"Yes", "No"}  # the comparison is not between constant answers


def test_server_killed_mid_run_then_restarted(world, served_checkpoint, vlm, tmp_path):
    """SIGKILL the server during a run: the run stops with an error, every answer that arrived is on disk;
    a rerun against a restarted server asks exactly for the missing ones and ends equal to a clean run."""
    benchmark, items, images_root = world_items(world, "pope_random", 40)
    out = tmp_path / "run"
    samples = out / "samples.jsonl"

    def rerun(model):
        return run_benchmark(
            benchmark, items, images_root=images_root, out_dir=out, decoding=dict(DECODING), progress=False,
            endpoint=model,
        )  # fmt: skip

    first = Served(served_checkpoint, tmp_path)
    errors = []
    model = endpoint(first, concurrency=2, max_retries=1)
    runner = threading.Thread(target=lambda: _catch(errors, rerun, model))
    runner.start()
    while runner.is_alive() and (not samples.is_file() or samples.read_bytes().count(b"\n") < 5):
        time.sleep(0.002)
    first.kill()
    runner.join()
    assert len(errors) == 1 and isinstance(errors[0], JudgeError), errors
    finished = read_finished(samples)
    assert 5 <= len(finished) < len(items)

    second = Served(served_checkpoint, tmp_path)
    try:
        rerun(endpoint(second, concurrency=2))
        assert second.completions_answered() == len(items) - len(finished)
    finally:
        second.stop()
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert sorted(ids) == sorted(item.id for item in items)  # each exactly once
    run(world, "pope_random", tmp_path / "clean", limit=40, vlm=vlm)
    assert read_finished(samples) == read_finished(tmp_path / "clean" / "samples.jsonl")


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except Exception as e:
        errors.append(e)
