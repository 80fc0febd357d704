"""The real runner on a tiny model: POPE questions about generated images, both modes, resume, results."""

import json
from pathlib import Path

from PIL import Image

from tether.eval.registry import get_benchmark
from tether.eval.runner import run_benchmark


def make_pope(tmp_path, n_images=3):
    images = tmp_path / "images"
    images.mkdir()
    rows, qid = [], 0
    for i in range(n_images):
        Image.new("RGB", (32, 32), ["red", "blue", "green"][i % 3]).save(images / f"img{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no")):
            qid += 1
            rows.append(
                {
                    "question_id": qid,
                    "image": f"img{i}.png",
                    "text": f"Is there a {shape} in the image?",
                    "label": label,
                }
            )
    path = tmp_path / "world_pope_random.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, images


def test_generate_and_fast_modes_write_results_and_resume(tiny_vlm, tmp_path, monkeypatch):
    questions, images = make_pope(tmp_path)
    bench = get_benchmark("pope")
    items = bench.load_items(questions)
    for mode in ("generate", "fast"):
        out = tmp_path / mode
        score = run_benchmark(
            bench,
            items,
            vlm=tiny_vlm,
            images_root=images,
            out_dir=out,
            mode=mode,
            decoding={"max_new_tokens": 4, "batch_size": 4},
            data_file=questions,
            progress=False,
        )
        results = json.loads((out / "results.json").read_text())
        assert results["decoding"]["mode"] == mode and results["decoding"]["max_new_tokens"] == 4
        assert results["n_samples"] == len(items) == 6
        assert set(score.metrics) >= {"accuracy", "f1", "yes_ratio"}
        samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        assert [s["id"] for s in samples] == [it.id for it in items]

    # a rerun answers nothing new: it would fail loading the model if it tried
    def no_loading(*args):
        raise AssertionError("a finished run loaded the model again")

    monkeypatch.setattr("tether.eval.runner.generator", no_loading)
    again = run_benchmark(
        bench,
        items,
        model_path=tiny_vlm.path,
        images_root=images,
        out_dir=tmp_path / "fast",
        mode="fast",
        data_file=questions,
        progress=False,
    )
    assert again.metrics == score.metrics


def test_interrupted_run_answers_only_the_rest(tiny_vlm, tmp_path):
    questions, images = make_pope(tmp_path)
    bench = get_benchmark("pope")
    items = bench.load_items(questions)
    out = tmp_path / "run"
    settings = {"images_root": images, "out_dir": out, "decoding": {"max_new_tokens": 3, "batch_size": 8}}
    run_benchmark(bench, items, vlm=tiny_vlm, progress=False, **settings)
    # as if killed after two samples, in the middle of writing the third
    (out / "samples.jsonl").write_text(
        json.dumps({"id": items[0].id, "answer": "Yes"})
        + "\n"
        + json.dumps({"id": items[1].id, "answer": "No"})
        + "\n"
        + '{"id": "3", "ans'
    )
    (out / "results.json").unlink()
    calls = []
    original = tiny_vlm.generate

    def counting_generate(images_, prompts, settings=None, **kw):
        calls.append(len(prompts))
        return original(images_, prompts, settings, **kw)

    tiny_vlm.generate = counting_generate
    try:
        run_benchmark(bench, items, vlm=tiny_vlm, progress=False, **settings)
    finally:
        del tiny_vlm.generate
    assert sum(calls) == len(items) - 2
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["answer"] == "Yes" and samples[1]["answer"] == "No" and len(samples) == len(items)


def test_cli_run_end_to_end(tiny_checkpoint, tmp_path):
    import subprocess
    import sys

    questions, images = make_pope(tmp_path, n_images=1)
    out = tmp_path / "cli"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "eval",
            "pope",
            "run",
            "--model",
            str(tiny_checkpoint),
            "--questions",
            str(questions),
            "--images",
            str(images),
            "--out",
            str(out),
            "--mode",
            "fast",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "results written to" in result.stdout
    assert json.loads((out / "results.json").read_text())["model"] == str(tiny_checkpoint)


def test_cli_mmhal_with_the_world_rule_judge(tmp_path):
    """A judge-scored benchmark end to end: tiny model answers, the world's rule judge rates them."""
    import subprocess
    import sys

    from tether.models.tiny import TinyConfig, build_tiny_checkpoint
    from tether.world.build import build_world
    from tether.world.config import load_world_config
    from tether.world.texts import world_words

    world = tmp_path / "world"
    smoke = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"
    build_world(load_world_config(smoke, ["mmhal_items=16"]), world)
    model = build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path / "tiny", world_words())
    out = tmp_path / "mmhal"
    command = [
        sys.executable,
        "-m",
        "tether",
        "eval",
        "mmhal",
        "run",
        "--model",
        str(model),
        "--data",
        str(world / "bench" / "mmhal" / "mmhal_world.json"),
        "--images",
        str(world / "images"),
        "--out",
        str(out),
        "--max-new-tokens",
        "6",
        "--no-progress",
    ]
    missing = subprocess.run(command, capture_output=True, text=True)
    assert missing.returncode == 2 and "needs a judge" in missing.stderr
    result = subprocess.run(
        command + ["--judge", "world-rule", "--world", str(world)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["judge"]["name"] == "world-rule" and results["n_samples"] == 16
    # a random model's answers are not informative: the rule judge never rates them 6
    assert 0 <= results["metrics"]["average_score"] < 6


def test_a_reused_folder_never_mixes_runs(tiny_checkpoint, tmp_path, capsys):
    """Issue 23, problem 1: another model, mode or split into a used --out is refused, naming the change;
    --overwrite replaces the old answers; the same inputs do nothing new."""
    from tether.cli import main
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    questions, images = make_pope(tmp_path, n_images=1)
    other_split = tmp_path / "world_pope_adversarial.jsonl"
    other_split.write_text(questions.read_text().replace("square", "triangle"))
    other_model = build_tiny_checkpoint(TinyConfig(arch="llava", seed=1), tmp_path / "other", ["square"])
    out = tmp_path / "out"

    def run(model, data, *extra):
        return main(["eval", "pope", "run", "--model", str(model), "--questions", str(data),
                     "--images", str(images), "--out", str(out), "--max-new-tokens", "2", "--no-progress",
                     *extra])  # fmt: skip

    assert run(tiny_checkpoint, questions) == 0
    samples = (out / "samples.jsonl").read_bytes()
    for model, data, extra, change in (
        (other_model, questions, [], "model.path"),
        (tiny_checkpoint, questions, ["--mode", "fast"], "mode"),
        (tiny_checkpoint, other_split, [], "data.path"),
        (tiny_checkpoint, questions, ["--max-new-tokens", "3"], "decoding.max_new_tokens"),
    ):
        assert run(model, data, *extra) == 2
        (error,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert error.startswith(f"tether: error: {out}: was made with other ") and f" {change} (" in error
        assert "pass --overwrite" in error
        assert (out / "samples.jsonl").read_bytes() == samples
    assert run(tiny_checkpoint, questions) == 0  # the same inputs: nothing answered again
    assert (out / "samples.jsonl").read_bytes().count(b"\n") == 2
    assert run(other_model, other_split, "--overwrite") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == str(other_model) and results["data"]["file"] == str(other_split)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["category"] == "adversarial" for r in records)
