"""`tether data pairs` end to end: the world's rule judge, an LLM judge on a loopback server, resume."""

import json
import re

import pytest

from chat_server import ChatServer, ok
from tether.cli import main
from tether.core.io import read_jsonl
from tether.core.text import split_sentences
from tether.data.pairs_llm import CORRECT_PROMPT, JUDGE_PROMPT, REWRITE_PROMPT
from tether.world.pairs import WorldPairJudge

FAST = ["--max-new-tokens", "24", "--no-progress"]


def world_args(checkpoint, world, out, limit=4):
    return [
        "data",
        "pairs",
        str(checkpoint),
        "--judge",
        "world",
        "--world",
        str(world),
        "--out",
        str(out),
    ] + [
        "--limit",
        str(limit),
        *FAST,
    ]


@pytest.fixture(scope="module")
def world_run(world_checkpoint, smoke_world, tmp_path_factory):
    """One uninterrupted run over the first 4 train scenes."""
    out = tmp_path_factory.mktemp("world_run") / "pairs.jsonl"
    assert main(world_args(world_checkpoint, smoke_world, out)) == 0
    return out


def test_world_run_writes_judged_pairs_whose_chosen_side_the_rule_judge_accepts(world_run, smoke_world):
    records = read_jsonl(world_run)
    progress = read_jsonl(world_run.with_suffix(".progress.jsonl"))
    assert [p["image_id"] for p in progress] == ["train_0", "train_1", "train_2", "train_3"]
    assert len(records) == sum(p["pairs"] for p in progress) > 0
    judge = WorldPairJudge(smoke_world, "train")
    for record in records:
        assert record["chosen"] != record["rejected"]
        assert record["images"] == [f"{record['image_id']}.png"]
        labels = record["provenance"]["labels"]
        assert labels == judge(record["image_id"], split_sentences(record["rejected"]))
        assert "hallucination" in labels
        assert "hallucination" not in judge(record["image_id"], split_sentences(record["chosen"]))
        # corrected, never shortened: DPO must not learn "be brief" from the pairs
        assert len(split_sentences(record["chosen"])) == len(split_sentences(record["rejected"]))
    run = json.loads(world_run.with_suffix(".run.json").read_text())
    assert run["finished"] and run["n_images"] == 4
    assert run["counts"]["pairs"] == len(records) and run["counts"]["resumed"] == 0
    assert run["settings"]["max_new_tokens"] == 24 and run["judge"]["name"] == judge.name
    assert "torch" in run["environment"]["versions"]


def test_rerun_resumes_and_a_torn_interrupted_run_ends_as_one_run(
    world_run, world_checkpoint, smoke_world, tmp_path, capsys
):
    # Rerunning the finished run does nothing.
    before = world_run.read_text()
    assert main(world_args(world_checkpoint, smoke_world, world_run)) == 0
    assert "0 images (4 resumed)" in capsys.readouterr().out and world_run.read_text() == before

    # A run killed while writing image 3 (train_2): two images done, one pair of train_2 written, then a
    # torn line in each file.
    out = tmp_path / "pairs.jsonl"
    done = {"train_0", "train_1"}
    lines = world_run.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["image_id"] in done]
    third = [line for line in lines if json.loads(line)["image_id"] == "train_2"]
    out.write_text("".join(kept) + "".join(third[:1]) + third[-1][:25])
    progress = world_run.with_suffix(".progress.jsonl").read_text().splitlines(keepends=True)
    out.with_suffix(".progress.jsonl").write_text("".join(progress[:2]) + progress[2][:10])
    started = {**json.loads(world_run.with_suffix(".run.json").read_text()), "finished": False}
    out.with_suffix(".run.json").write_text(json.dumps(started))
    assert third, "the scenario needs pairs for train_2"

    assert main(world_args(world_checkpoint, smoke_world, out)) == 0
    assert "2 images (2 resumed)" in capsys.readouterr().out
    assert out.read_text() == before
    assert out.with_suffix(".progress.jsonl").read_text() == "".join(progress)


def test_rerun_with_other_settings_is_refused(world_run, world_checkpoint, smoke_world, capsys):
    args = world_args(world_checkpoint, smoke_world, world_run) + ["--temperature", "0.7"]
    assert main(args) == 2
    assert "was made with other settings.temperature (1.0 -> 0.7)" in capsys.readouterr().err


def fake_llm(messages: list[dict]) -> str:
    """Judge: the first sentence is a hallucination; corrector: fixes it; rewriter: two variants."""
    system, user = messages[0]["content"], messages[1]["content"]
    if system == JUDGE_PROMPT:
        n = int(re.search(r"Sentences \((\d+)\):", user).group(1))
        return json.dumps({"labels": ["hallucination"] + ["correct"] * (n - 1)})
    if system == CORRECT_PROMPT:
        n = int(re.search(r"\((\d+) marked", user).group(1))
        return "```json\n" + json.dumps({"corrections": ["There is a white circle"] * n}) + "\n```"
    assert system == REWRITE_PROMPT
    chosen = re.search(r"^CHOSEN: (.*)$", user, re.M).group(1)
    rejected = re.search(r"^REJECTED: (.*)$", user, re.M).group(1)
    variants = [{"chosen": f"V{k}: {chosen}", "rejected": f"V{k}: {rejected}"} for k in (1, 2)]
    return json.dumps({"variants": variants})


def test_llm_judge_with_rewriting_end_to_end(world_checkpoint, smoke_world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAIRS_TEST_KEY", "sk-secret-never-written")
    image_list = tmp_path / "images.jsonl"
    rows = [
        {"image_id": "a", "image": "train_0.png", "captions": ["A pink triangle in the top left."]},
        {"image_id": "b", "image": "train_1.png", "facts": "Two squares.", "objects": ["square"]},
    ]
    image_list.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "pairs.jsonl"
    with ChatServer(default=ok(fake_llm)) as server:
        recipe = tmp_path / "judge.yaml"
        recipe.write_text(
            f"model: judge-test\nbase_url: {server.base_url}\napi_key_env: PAIRS_TEST_KEY\n"
            f"max_retries: 0\ncache_dir: {tmp_path / 'cache'}\n"
        )
        args = ["data", "pairs", str(world_checkpoint), "--judge", "llm", "--judge-config", str(recipe)]
        args += ["--image-list", str(image_list), "--images", str(smoke_world / "images"), "--out", str(out)]
        args += ["--samples-per-image", "2", "--max-pairs-per-image", "1", "--variants", "2", *FAST]
        assert main(args) == 0
        user_messages = [r["body"]["messages"][1]["content"] for r in server.requests]
    records = read_jsonl(out)
    assert [(r["image_id"], r["provenance"]["variant"]) for r in records] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]
    for record in records:
        before = record["provenance"]["before_rewrite"]
        prefix = f"V{record['provenance']['variant'] + 1}: "
        assert record["chosen"] == prefix + before["chosen"]
        assert record["rejected"] == prefix + before["rejected"]
        assert before["chosen"].startswith("There is a white circle.")
        assert record["provenance"]["judge"] == "llm:judge-test"
        assert record["provenance"]["labels"][0] == "hallucination"
    assert "- A pink triangle in the top left.\n" in user_messages[0]
    assert any("- Two squares.\n- Objects present: square.\n" in m for m in user_messages)
    run_text = out.with_suffix(".run.json").read_text()
    assert "sk-secret-never-written" not in run_text + out.read_text()
    run = json.loads(run_text)
    assert (
        run["judge"]["client"]["model"] == "judge-test" and run["judge"]["rewriter"]["model"] == "judge-test"
    )
    assert run["judge_usage"]["calls"] == len(server.requests) > 0
    printed = capsys.readouterr().out
    assert "2 images (0 resumed)" in printed and "4 pairs written" in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--judge", "llm", "--judge-config", "x.yaml"], "--judge llm needs --image-list"),
        (["--judge", "world"], "--judge world needs --world"),
        (["--judge", "world", "--world", "w", "--variants", "2"], "need --judge-config"),
        (["--judge", "llm", "--image-list", "{list}", "--images", "."], "need --judge-config"),
    ],
)
def test_missing_pieces_are_one_line_errors(extra, message, tmp_path, capsys):
    image_list = tmp_path / "list.json"
    image_list.write_text('[{"image_id": "a", "image": "a.png", "captions": ["x"]}]')
    extra = [str(image_list) if e == "{list}" else e for e in extra]
    assert main(["data", "pairs", "model", "--out", str(tmp_path / "p.jsonl"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_image_list_errors_name_the_line(tmp_path, capsys):
    image_list = tmp_path / "list.jsonl"
    image_list.write_text('{"image_id": "a", "image": "a.png"}\n{"image_id": "b", "captions": 3}\n')
    world = tmp_path / "w"
    args = [
        "data",
        "pairs",
        "model",
        "--judge",
        "world",
        "--world",
        str(world),
        "--out",
        str(tmp_path / "p.jsonl"),
    ]
    assert main(args + ["--image-list", str(image_list)]) == 2  # images are checked where they are listed
    assert f"{image_list}:1: image 'a.png' not found under {world / 'images'}" in capsys.readouterr().err
    (world / "images").mkdir(parents=True)
    (world / "images" / "a.png").write_bytes(b"")
    assert main(args + ["--image-list", str(image_list)]) == 2
    assert f"{image_list}:2: missing field 'image'" in capsys.readouterr().err


def test_world_corrector_replaces_rather_than_drops(smoke_world):
    # a description that already names every object, plus a hallucinated one: nothing unmentioned is left
    # to describe, and the correction must still keep the sentence count (else chosen is always shorter)
    import random

    from tether.world import texts, vocab

    judge = WorldPairJudge(smoke_world, "train")
    checked = 0
    for image_id, scene in judge.scenes.items():
        absent = [s for s in vocab.SHAPES if s not in scene.shapes()]
        own = split_sentences(texts.description(random.Random(0), scene, judge.rules.grid_size))
        sentences = own + [f"There is a {absent[0]} in the center."]
        labels = judge(image_id, sentences)
        if labels[-1] != "hallucination" or "hallucination" in labels[:-1]:
            continue
        corrected = judge.correct(image_id, sentences, labels)
        assert len(corrected) == len(sentences) and corrected[:-1] == sentences[:-1]
        assert "hallucination" not in judge(image_id, corrected)
        checked += 1
    assert checked >= 20
