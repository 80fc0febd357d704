"""Bootstrap intervals, results.json / samples.jsonl, `tether report`, and the `run` hand-off."""

import json

import pytest
from eval_helpers import write_jsonl

from tether.eval.benchmark import Score
from tether.eval.compare import compare_runs, format_comparison
from tether.eval.registry import BENCHMARKS, get_benchmark
from tether.eval.stats import bootstrap_intervals


def _mean(records):
    return {"mean": sum(r["x"] for r in records) / len(records)}


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    records = [{"x": float(i % 7)} for i in range(200)]
    first = bootstrap_intervals(records, _mean, n_resamples=300, seed=3)
    assert first == bootstrap_intervals(records, _mean, n_resamples=300, seed=3)
    assert first != bootstrap_intervals(records, _mean, n_resamples=300, seed=4)
    low, high = first["mean"]
    assert low < _mean(records)["mean"] < high
    # Standard error of the mean is about 2.0/sqrt(200) = 0.14: the 95% interval is about 0.55 wide.
    assert 0.3 < high - low < 0.8


def test_bootstrap_constant_metric_has_zero_width():
    records = [{"x": 1.0}] * 10
    assert bootstrap_intervals(records, _mean, n_resamples=50) == {"mean": [1.0, 1.0]}


def test_cluster_bootstrap_keeps_groups_whole():
    records = [{"pair": p, "x": float(p)} for p in range(20) for _ in range(2)]

    def sizes(rs):
        counts = {}
        for r in rs:
            counts[r["pair"]] = counts.get(r["pair"], 0) + 1
        return {"all_even": float(all(c % 2 == 0 for c in counts.values()))}

    assert bootstrap_intervals(records, sizes, n_resamples=50, cluster_key="pair")["all_even"] == [1.0, 1.0]


def test_registry():
    assert set(BENCHMARKS) == {"pope", "chair", "mme", "mmhal", "shr", "amber", "objhalbench"}
    assert all(unit.description for unit in BENCHMARKS.values())  # each one's line in `tether eval --help`
    assert get_benchmark("pope").name == "pope"
    with pytest.raises(Exception, match="unknown benchmark 'nope'"):
        get_benchmark("nope")


def test_write_results_and_report(tmp_path, run_cli):
    questions = write_jsonl(
        tmp_path / "coco_pope_random.jsonl",
        [
            {"question_id": i, "image": "a.jpg", "text": "?", "label": "yes" if i % 2 else "no"}
            for i in range(1, 41)
        ],
    )
    runs = []
    for name, reply in (("always-yes", "Yes"), ("always-no", "No")):
        answers = write_jsonl(
            tmp_path / f"{name}.jsonl", [{"question_id": i, "text": reply} for i in range(1, 41)]
        )
        out = tmp_path / name
        code, _, _ = run_cli(
            "eval",
            "pope",
            "score",
            "--questions",
            questions,
            "--answers",
            answers,
            "--out",
            out,
            "--model",
            name,
            "--data-version",
            "test",
            "--resamples",
            "100",
        )
        assert code == 0
        runs.append(out)
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["benchmark"] == "pope" and results["model"] == "always-yes"
    assert results["metrics"]["recall"] == 1.0 and results["metrics"]["precision"] == 0.5
    assert results["data"]["version"] == "test" and len(results["data"]["sha256"]) == 64
    assert "torch" in results["environment"]["versions"] or "python" in results["environment"]["versions"]
    low, high = results["intervals"]["accuracy"]
    assert low <= 0.5 <= high
    samples = [json.loads(line) for line in (runs[0] / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 40 and samples[0] == {
        "id": "1",
        "category": "random",
        "answer": "Yes",
        "parsed": "yes",
        "label": "yes",
        "correct": True,
    }
    table = format_comparison(compare_runs(runs, n_resamples=100))
    assert "always-yes #" in table and "always-no #" in table
    f1_row = next(line for line in table.splitlines() if line.startswith("f1 "))
    assert "0.6667" in f1_row and "0.0000" in f1_row
    code, out, _ = run_cli("report", *runs, "--markdown", "--no-intervals", "--resamples", "100")
    assert code == 0 and "| recall | 1.0000 | 0.0000 (Δ -1.0000 hurts) |" in out


def test_score_intervals_empty_without_metrics_fn():
    assert Score(metrics={"a": 1.0}, per_sample=[]).intervals() == {}


@pytest.mark.parametrize("bench", ["pope", "chair", "mme", "mmhal", "shr", "amber"])
def test_every_verb_has_help(bench, run_cli):
    for verb in ("score", "run"):
        with pytest.raises(SystemExit) as done:
            run_cli("eval", bench, verb, "--help")
        assert done.value.code == 0
