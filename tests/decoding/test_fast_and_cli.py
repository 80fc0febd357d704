"""The fast yes/no variants against generation, and the strategies through `tether eval pope run`."""

import json

import pytest
import torch
from decoding_helpers import PROMPTS, images
from PIL import Image

from tether.core.errors import TetherError
from tether.decoding.dispatch import fast_margins, generate, resolve
from tether.decoding.distortion import distorted_image_inputs
from tether.decoding.options import strategy_options
from tether.decoding.yes_no import first_token_logprobs
from tether.models import DecodingSettings


@pytest.mark.parametrize("strategy", ["vcd", "icd", "m3id"])
def test_fast_scores_pick_the_generated_first_token(llava, strategy):
    import importlib

    module = importlib.import_module(f"tether.decoding.{strategy}")
    settings = resolve(DecodingSettings(max_new_tokens=1, strategy=strategy, strategy_options={"beta": 0.0}))
    options = module.STRATEGY.settings_cls(**settings.strategy_options)
    image = images(1)[0]
    questions = [(0, p) for p in PROMPTS]
    main = first_token_logprobs(llava, [image], questions)
    if strategy == "vcd":
        other = first_token_logprobs(
            llava, [image], questions, distorted_image_inputs(llava, [image], 500, 0)
        )
    elif strategy == "icd":
        other = first_token_logprobs(llava, [image], [(0, f"{options.disturbance} {p}") for p in PROMPTS])
    else:
        other = first_token_logprobs(llava, None, questions)
    picked = module.combine(options, main, other, 0).argmax(dim=-1).tolist()
    generated = generate(llava, [image] * 3, PROMPTS, settings)
    assert generated == [llava.tokenizer.decode([t], skip_special_tokens=True).strip() for t in picked]
    assert torch.isfinite(fast_margins(llava, [image], questions, settings)).all()


def test_options_are_checked_against_the_settings():
    assert strategy_options("vcd", ["alpha=0.5", "noise_step=999"]) == {
        "alpha": 0.5, "beta": 0.1, "noise_step": 999, "seed": 0
    }  # fmt: skip
    with pytest.raises(TetherError, match=r"unknown key\(s\) \['alpah'\] for VCDSettings"):
        strategy_options("vcd", ["alpah=0.5"])
    with pytest.raises(TetherError, match="expected float"):
        strategy_options("icd", ["alpha=strong"])
    with pytest.raises(TetherError, match="noise_step"):
        strategy_options("vcd", ["noise_step=1000"])
    with pytest.raises(TetherError, match="needs a --decoding strategy"):
        strategy_options("greedy", ["alpha=1"])
    with pytest.raises(TetherError, match="expects KEY=VALUE"):
        strategy_options("m3id", ["lam"])


def make_pope(tmp_path):
    images_root = tmp_path / "images"
    images_root.mkdir()
    rows = []
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (32, 32), colour).save(images_root / f"img{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no")):
            question = f"is there a {shape} ?"
            rows.append(
                {"question_id": len(rows) + 1, "image": f"img{i}.png", "text": question, "label": label}
            )
    path = tmp_path / "world_pope_random.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, images_root


def test_eval_pope_run_with_vcd_end_to_end(llava_checkpoint, tmp_path, run_cli):
    questions, images_root = make_pope(tmp_path)
    out = tmp_path / "vcd"

    def run(*extra):
        return run_cli("eval", "pope", "run", "--model", llava_checkpoint, "--questions", questions, "--images",
                       images_root, "--out", out, "--max-new-tokens", "2", "--no-progress", *extra)  # fmt: skip

    code, stdout, stderr = run("--decoding", "vcd")
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert results["decoding"]["strategy"] == "vcd"
    assert results["decoding"]["strategy_options"] == {
        "alpha": 1.0,
        "beta": 0.1,
        "noise_step": 500,
        "seed": 0,
    }
    assert results["n_samples"] == 4
    samples = (out / "samples.jsonl").read_bytes()
    # the paper's default set explicitly is the same run; another alpha is refused, naming it
    assert run("--decoding", "vcd", "--decoding-set", "alpha=1")[0] == 0
    code, _, stderr = run("--decoding", "vcd", "--decoding-set", "alpha=0.5")
    assert code == 2 and "decoding.strategy_options.alpha (" in stderr and "pass --overwrite" in stderr
    assert (out / "samples.jsonl").read_bytes() == samples
    # fast mode runs the strategy's fast variant, and records it in the fingerprint
    code, _, stderr = run("--decoding", "icd", "--mode", "fast", "--out", tmp_path / "fast")
    assert code == 0, stderr
    fingerprint = json.loads((tmp_path / "fast" / "fingerprint.json").read_text())
    assert "icd" in json.dumps(fingerprint)
    code, _, stderr = run("--decoding", "vcd", "--decoding-set", "alpah=1", "--out", tmp_path / "bad")
    assert code == 2 and "alpah" in stderr


def test_data_pairs_samples_with_the_strategy(tmp_path, monkeypatch):
    """`data pairs --decoding`: the strategy and its options reach the sampler, and the fingerprint."""
    from tether.data.pairs import PairSettings, build_pairs
    from tether.decoding.options import decoding_from_args

    seen = []

    def fake_generate(vlm, images, prompts, decoding):
        seen.append(decoding)
        return ["a red square . a blue circle ."] * len(prompts)

    monkeypatch.setattr("tether.data.pairs.generate", fake_generate)
    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    args = type("Args", (), {"decoding": "icd", "decoding_set": ["alpha=2"]})()
    settings = PairSettings(samples_per_image=2, **decoding_from_args(args))
    judge = lambda image_id, sentences: ["correct", "hallucination"]  # noqa: E731
    counts = build_pairs(object(), [("a", "a.png")], tmp_path, tmp_path / "p.jsonl", judge, settings=settings,
                         progress=False)  # fmt: skip
    assert counts["pairs"] == 1
    (decoding,) = seen
    assert decoding.strategy == "icd" and decoding.do_sample
    assert decoding.strategy_options == {
        "alpha": 2.0,
        "beta": 0.1,
        "disturbance": "You are a confused object detector.",
    }
