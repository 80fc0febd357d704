import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.data.rlhf import PreferenceRecord, load_preference_records
from tether.methods.reward import (
    FACTS_HEADER,
    PairwiseRewardModule,
    PreferenceCollator,
    RewardConfig,
    RewardModel,
    load_reward_model,
    reward_prompt,
    train_reward,
)
from tether.methods.reward_loss import pairwise_reward_loss

COLOURS = ["red", "blue", "green"]


@pytest.fixture
def preference_data(tmp_path):
    """Each image is one colour; chosen names it; rejected names another and adds a hallucinated object."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(COLOURS * 2):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        wrong = COLOURS[(COLOURS.index(colour) + 1 + i // 3) % 3]
        rows.append(
            {
                "image": f"{i}.png",
                "prompt": "what color is it ?",
                "chosen": f"it is {colour} .",
                "rejected": f"it is {wrong} . there is a triangle .",
                "facts": [f"there is a {colour} square ."],
            }
        )
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, images


def test_reward_prompt_layout():
    text = reward_prompt("q ?", "resp", facts=["f1", "f2"], options=["x", "y"])
    assert text.splitlines()[:5] == ["Question: q ?", "Options: A. x B. y", FACTS_HEADER, "- f1", "- f2"]
    assert "Response: resp" in text
    assert FACTS_HEADER not in reward_prompt("q ?", "resp")


def test_reward_is_head_of_last_prompt_token_and_padding_free(tiny_vlm):
    torch.manual_seed(0)
    rm = RewardModel(tiny_vlm)
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    questions, responses = ["what color is it ?"] * 2, ["red", "a blue circle left of a green square"]
    facts = [["there is a red square ."], []]
    batched = rm.score(images, questions, responses, facts)
    for i in range(2):
        batch = rm.encode(images[i : i + 1], questions[i : i + 1], responses[i : i + 1], facts[i : i + 1])
        with torch.no_grad():
            hidden = tiny_vlm.last_hidden_states(batch)[0, -1]
            by_hand = hidden @ rm.head.weight[0] + rm.head.bias[0]
        assert batched[i].item() == pytest.approx(by_hand.item(), abs=1e-4)


def test_vanilla_reward_model_ignores_facts(tiny_vlm):
    image = [Image.new("RGB", (32, 32), "red")]
    args = (image, ["what color is it ?"], ["red"])
    for use_facts, differs in ((True, True), (False, False)):
        torch.manual_seed(0)
        rm = RewardModel(tiny_vlm, use_facts=use_facts)
        a = rm.score(*args, [["there is a red square ."]])
        b = rm.score(*args, [["there is a blue circle ."]])
        assert (not torch.allclose(a, b)) == differs


def test_module_loss_matches_pairwise_loss(tiny_vlm, preference_data):
    path, images = preference_data
    torch.manual_seed(0)
    rm = RewardModel(tiny_vlm)
    records = load_preference_records(path)
    batch = PreferenceCollator(rm, images)(records)
    with torch.no_grad():
        loss = PairwiseRewardModule(rm, 0.01)(**batch)["loss"]
        open_ = [Image.open(images / r.image).convert("RGB") for r in records]
        prompts = [r.prompt for r in records]
        chosen = rm.score(open_, prompts, [r.chosen for r in records], [r.facts for r in records])
        rejected = rm.score(open_, prompts, [r.rejected for r in records], [r.facts for r in records])
    assert loss.item() == pytest.approx(pairwise_reward_loss(chosen, rejected, 0.01)[0].item(), rel=1e-4)


def test_train_reward_learns_saves_and_loads(tiny_checkpoint, preference_data, tmp_path):
    path, images = preference_data
    out = tmp_path / "rm_run"
    config = load_config(
        RewardConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{path}]",
            f"data.eval=[{path}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=40",
            "train.learning_rate=1e-2",
            "train.per_device_train_batch_size=6",
            "train.logging_steps=20",
            "train.save_steps=40",
            "train.progress_bar=false",
            "model.lora={r: 8, alpha: 16, dropout: 0.0}",
        ],
    )
    folder = train_reward(config)
    record = json.loads((out / "run.json").read_text())
    losses = [r["loss"] for r in record["log_history"] if "loss" in r]
    assert losses[-1] < 0.1  # from about log 2 = 0.69 with an untrained head
    assert record["eval"]["accuracy"] == 1.0
    assert (out / "checkpoint-40" / "trainable.safetensors").is_file()
    loaded = load_reward_model(folder)
    records = load_preference_records(path)
    images_open = [Image.open(images / r.image).convert("RGB") for r in records]
    prompts, facts = [r.prompt for r in records], [r.facts for r in records]
    chosen = loaded.score(images_open, prompts, [r.chosen for r in records], facts)
    rejected = loaded.score(images_open, prompts, [r.rejected for r in records], facts)
    assert (chosen > rejected).all()  # the exported (LoRA merged) model ranks as the trained one did
    assert (chosen - rejected).mean().item() == pytest.approx(record["eval"]["mean_margin"], rel=1e-3)


def test_mixed_image_batch_is_an_error(tiny_vlm):
    from tether.core.errors import TetherError

    rm = RewardModel(tiny_vlm)
    records = [PreferenceRecord("0.png", "q", "a", "b"), PreferenceRecord(None, "q", "a", "b")]
    with pytest.raises(TetherError, match="mixes pairs"):
        PreferenceCollator(rm, ".")(records)


def test_cli_trains_the_vanilla_reward_model(tiny_checkpoint, preference_data, tmp_path):
    from tether.cli import main

    if "qwen" in tiny_checkpoint.name:
        pytest.skip("one architecture is enough for the command line")
    path, images = preference_data
    out = tmp_path / "cli_rm"
    overrides = [
        f"model.path={tiny_checkpoint}",
        f"data.train=[{path}]",
        f"data.images={images}",
        "train.max_steps=2",
        "train.progress_bar=false",
    ]
    argv = ["train", "reward", "--no-facts", "--output-dir", str(out)]
    assert main(argv + [a for o in overrides for a in ("--set", o)]) == 0
    assert json.loads((out / "reward_model" / "reward_model.json").read_text())["use_facts"] is False
    assert load_reward_model(out / "reward_model").use_facts is False
