"""Problem 8 of issue 23: the options people reach for on `tether eval ... run`, on a tiny model."""

import json

import pytest
from everyday_helpers import write_pope_split

from tether.eval.run_options import PROMPT_SUFFIXES, YES_NO_MAX_NEW_TOKENS


def _samples(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_all_pope_splits_in_one_run_with_limit_suffix_and_p_yes(tiny_llava, tmp_path, run_cli):
    random_file, images = write_pope_split(tmp_path, "random", n_images=3)
    adversarial_file, _ = write_pope_split(tmp_path, "adversarial", n_images=3)
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        "eval", "pope", "run", "--model", tiny_llava, "--questions", random_file, adversarial_file,
        "--images", images, "--out", out, "--mode", "fast", "--limit", "8", "--seed", "3",
        "--prompt-suffix", "llava-short", "--no-progress", "--device", "cpu", "--dtype", "bfloat16",
        "--attn-implementation", "eager",
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    # both splits scored in one run, ids kept apart by split (each file numbers from 1)
    assert {"random/f1", "adversarial/f1", "f1_mean"} <= set(results["metrics"])
    assert results["n_samples"] == 8 and len(results["data"]["sha256"]) == 2
    samples = _samples(out)
    assert len({s["id"] for s in samples}) == 8 and {s["id"].split("/")[0] for s in samples} <= {
        "random",
        "adversarial",
    }
    # the seeded subset is the same on a second run with the same seed, another with another seed
    ids = [s["id"] for s in samples]
    again = tmp_path / "again"
    assert run_cli(
        "eval", "pope", "run", "--model", tiny_llava, "--questions", random_file, adversarial_file,
        "--images", images, "--out", again, "--mode", "fast", "--limit", "8", "--seed", "3",
        "--prompt-suffix", "llava-short", "--no-progress",
    )[0] == 0  # fmt: skip
    assert [s["id"] for s in _samples(again)] == ids
    # question, image and p(yes) in every sample; p(yes) agrees with the answer
    suffix = PROMPT_SUFFIXES["llava-short"]
    for sample in samples:
        assert sample["question"].endswith("\n" + suffix) and sample["question"].startswith("Is there a")
        assert sample["image"].startswith("img")
        assert 0.0 <= sample["p_yes"] <= 1.0 and (sample["p_yes"] > 0.5) == (sample["answer"] == "Yes")
    extra = results["extra"]
    assert extra["limit"] == 8 and extra["prompt_suffix"] == suffix
    # a yes/no benchmark caps the generation budget, and says so
    assert results["decoding"]["max_new_tokens"] == YES_NO_MAX_NEW_TOKENS and extra["max_new_tokens_default"]
    # problem 2: where and how the model ran is recorded
    assert extra["model_placement"] == {"device": "cpu", "dtype": "bfloat16", "attn_implementation": "eager"}
    assert extra["model_load"] == {"device": "cpu", "dtype": "bfloat16", "attn_implementation": "eager"}


def test_prompt_template_and_a_suffix_already_in_the_file(tiny_llava, tmp_path, run_cli):
    questions, images = write_pope_split(tmp_path, "random", n_images=1)
    suffix = PROMPT_SUFFIXES["llava-short"]
    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    rows[0]["text"] += "\n" + suffix  # as in LLaVA's own question files: not appended twice
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    code, _, err = run_cli(
        "eval", "pope", "run", "--model", tiny_llava, "--questions", questions, "--images", images,
        "--out", out, "--max-new-tokens", "2", "--prompt-template", "Look closely. {question}",
        "--prompt-suffix", "llava-short", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    questions_asked = [s["question"] for s in _samples(out)]
    assert questions_asked[0] == f"Look closely. Is there a square in the image?\n{suffix}"
    assert questions_asked[1] == f"Look closely. Is there a circle in the image?\n{suffix}"
    results = json.loads((out / "results.json").read_text())
    assert results["extra"]["questions_already_suffixed"] == 1
    assert results["decoding"]["max_new_tokens"] == 2 and not results["extra"]["max_new_tokens_default"]
    assert "p_yes" not in _samples(out)[0]  # generate mode has no yes-probability


def test_inputs_are_checked_before_the_model_loads(tmp_path, run_cli):
    """A missing images folder or image file is an error before loading: the model path does not exist."""
    questions, images = write_pope_split(tmp_path, "random", n_images=2)
    base = ["eval", "pope", "run", "--model", tmp_path / "no-model", "--questions", questions]
    code, _, err = run_cli(*base, "--images", tmp_path / "nowhere", "--out", tmp_path / "a")
    assert code == 2 and "--images" in err and "nowhere" in err and "no such folder" in err
    (images / "img1.png").unlink()
    code, _, err = run_cli(*base, "--images", images, "--out", tmp_path / "b")
    assert code == 2 and "1 of 2 images not found" in err and "img1.png" in err
    assert "checkpoint" not in err  # never got as far as the model


@pytest.mark.parametrize("limit", [0, -2])
def test_limit_must_be_positive(limit, tmp_path, run_cli):
    questions, images = write_pope_split(tmp_path, "random", n_images=1)
    code, _, err = run_cli(
        "eval", "pope", "run", "--model", tmp_path, "--questions", questions, "--images", images,
        "--out", tmp_path / "o", "--limit", limit,
    )  # fmt: skip
    assert code == 2 and "--limit must be >= 1" in err
