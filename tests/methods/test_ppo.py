import json
import math

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.methods.ppo import PPOConfig, PPOSettings, train_ppo
from tether.methods.ppo_loss import shape_scores, symbolic_bonus
from tether.methods.ppo_rollout import drop_eos_where_unfinished
from tether.methods.reward import RewardModel
from tether.models import DecodingSettings, load


@pytest.fixture
def ppo_setup(tiny_checkpoint, tmp_path):
    """Prompts over coloured images and an (untrained) reward model built from the same checkpoint."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append(
            {
                "image": f"{i}.png",
                "prompt": "what color is it ?",
                "facts": [f"a {colour} square ."],
                "answer": "yes",
            }
        )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reward_model = RewardModel(load(tiny_checkpoint)).save(tmp_path / "rm")
    return tiny_checkpoint, prompts, images, reward_model


def ppo_config(ppo_setup, out, *extra):
    checkpoint, prompts, images, reward_model = ppo_setup
    return load_config(
        PPOConfig,
        None,
        [
            f"model.path={checkpoint}",
            f"data.train=[{prompts}]",
            f"data.images={images}",
            f"ppo.reward_model={reward_model}",
            f"train.output_dir={out}",
            "ppo.rollout_batch_size=4",
            "ppo.mini_batch_size=2",
            "ppo.max_new_tokens=5",
            *extra,
        ],
    )


def test_symbolic_bonus():
    assert symbolic_bonus("Yes, there is a cat.", "yes") == 0.5
    assert symbolic_bonus("no .", "yes") == -0.5
    assert symbolic_bonus("There is no cat.", "no") == 0.0  # only the first word decides, as LLaVA-RLHF
    assert symbolic_bonus("B. a cat", "B") == 1.0
    assert symbolic_bonus("I think the correct option is c.", "C") == 1.0
    assert symbolic_bonus("A. a dog", "B") == 0.0
    assert symbolic_bonus("anything", None) == 0.0


def test_shape_scores_by_hand():
    reward = torch.tensor([1.0, 2.0, -1.0])
    unfinished = torch.tensor([False, True, True])
    lengths = torch.tensor([4.0, 8.0, 8.0])
    multipliers = torch.tensor([1.0, 0.5, 1.0])
    bonus = torch.tensor([1.0, 0.0, -0.5])
    # LLaVA-RLHF's settings: relative penalty −8, length term −10 · len / 8 · multiplier, correct bonus 2
    settings = PPOSettings(max_new_tokens=8, no_eos_penalty=-8.0, length_bonus=-10.0, correct_bonus=2.0)
    score = shape_scores(reward, unfinished, lengths, multipliers, bonus, settings)
    torch.testing.assert_close(score, torch.tensor([1 - 5 + 2, 2 - 8 - 5, -1 - 8 - 10 - 1.0]))
    settings.no_eos_penalty_replaces = True
    score = shape_scores(reward, unfinished, lengths, multipliers, bonus, settings)
    torch.testing.assert_close(score, torch.tensor([1 - 5 + 2, -8 - 5, -8 - 10 - 1.0]))
    torch.testing.assert_close(
        shape_scores(reward, unfinished, lengths, multipliers, bonus, PPOSettings()), reward
    )


def test_drop_eos_where_unfinished(tiny_vlm):
    images = [Image.new("RGB", (32, 32), "red")] * 2
    batch = tiny_vlm.encode(images, ["what ?"] * 2, ["red square", "red square"])
    dropped = drop_eos_where_unfinished(tiny_vlm, batch, [True, False])
    assert torch.equal(dropped.input_ids[0], batch.input_ids[0])
    assert dropped.response_mask[1].sum() == batch.response_mask[1].sum() - 1
    last = int(dropped.attention_mask[1].sum()) - 1
    assert dropped.input_ids[1, last] != tiny_vlm.eos_token_id
    assert tiny_vlm.eos_token_id not in dropped.input_ids[1][dropped.response_mask[1]].tolist()


def test_ppo_smoke_with_lora_and_reward_model(ppo_setup, tmp_path):
    out = tmp_path / "run"
    lora = "{r: 8, alpha: 16, dropout: 0.0}"
    config = ppo_config(
        ppo_setup,
        out,
        "train.max_steps=3",
        "train.save_steps=3",
        f"model.lora={lora}",
        "ppo.no_eos_penalty=-1.0",
        "ppo.length_bonus=0.1",
        "ppo.correct_bonus=1.0",
    )
    exported = train_ppo(config)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    for name in (
        "reward",
        "score",
        "kl",
        "entropy",
        "response_length",
        "clipfrac",
        "policy_loss",
        "value_loss",
    ):
        assert all(math.isfinite(r[name]) for r in log), name
    # before the first update the policy is its reference (LoRA's B starts at 0): KL exactly 0
    assert log[0]["kl"] == 0.0 and log[0]["approx_kl"] > 0
    assert log[-1]["kl"] != 0.0
    # shaping: score = reward + penalty·no_eos + 0.1·length/5 + bonus (first steps: model's own answers)
    first = log[0]
    expected = (
        first["reward"]
        - first["no_eos_fraction"]
        + 0.1 * first["response_length"] / 5
        + first["symbolic_bonus"]
    )
    assert first["score"] == pytest.approx(expected, abs=1e-5)
    checkpoint = out / "checkpoint-3"
    assert {p.name for p in checkpoint.iterdir()} == {
        "trainable.safetensors",
        "optimizer.safetensors",
        "ppo_state.json",
    }
    assert json.loads((out / "run.json").read_text())["history"][-1]["step"] == 3
    assert load(exported).generate(
        [Image.new("RGB", (32, 32), "red")], ["what ?"], DecodingSettings(max_new_tokens=2)
    )


class _Crash(Exception):
    pass


def test_interrupted_ppo_resumes_to_identical_weights(ppo_setup, tmp_path):
    from safetensors.torch import load_file

    def run(out, crash_at=None):
        calls = []

        def score(records, responses):
            calls.append(1)
            if len(calls) == crash_at:
                raise _Crash
            return [float("red" in r.split()) for r in responses]

        extra = [
            "train.max_steps=4",
            "train.save_steps=2",
            "train.learning_rate=1e-3",
            "model.lora={r: 4, alpha: 8}",
        ]
        train_ppo(ppo_config(ppo_setup, out, *extra), score_fn=score)

    run(tmp_path / "straight")
    with pytest.raises(_Crash):
        run(tmp_path / "crashed", crash_at=3)  # dies in step 3, after checkpoint-2
    assert not (tmp_path / "crashed" / "checkpoint-4").exists()
    run(tmp_path / "crashed")
    for name in ("trainable.safetensors", "optimizer.safetensors"):
        straight = load_file(tmp_path / "straight" / "checkpoint-4" / name)
        resumed = load_file(tmp_path / "crashed" / "checkpoint-4" / name)
        assert straight.keys() == resumed.keys() and len(straight) > 0
        for key in straight:
            torch.testing.assert_close(straight[key], resumed[key], atol=1e-6, rtol=1e-5)
    history = json.loads((tmp_path / "crashed" / "run.json").read_text())["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]


def test_ppo_raises_a_toy_reward(ppo_setup, tmp_path):
    """Reward 1 when the response contains 'red': PPO (full fine-tuning, frozen reference copy) learns it."""
    out = tmp_path / "toy"
    config = ppo_config(
        ppo_setup,
        out,
        "train.max_steps=30",
        "train.learning_rate=3e-3",
        "train.save_steps=0",
        "ppo.rollout_batch_size=16",
        "ppo.mini_batch_size=8",
        "ppo.max_new_tokens=4",
    )
    train_ppo(config, score_fn=lambda records, responses: [float("red" in r.split()) for r in responses])
    rewards = [json.loads(line)["reward"] for line in (out / "log.jsonl").read_text().splitlines()]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.3, rewards


def test_reward_inside_ppo_is_the_saved_reward_model(ppo_setup, tmp_path):
    """The value network shares the reward model's weights; with its adapter disabled it scores as the RM."""
    from tether.data.rlhf import load_prompt_records
    from tether.methods.ppo import PPORunner
    from tether.methods.reward import load_reward_model

    checkpoint, prompts, images, reward_folder = ppo_setup
    runner = PPORunner(ppo_config(ppo_setup, tmp_path / "run", "model.lora={r: 4, alpha: 8}"))
    with torch.no_grad():
        for name, param in runner.value_vlm.model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)  # a trained-looking value adapter must not leak into the reward
    records = load_prompt_records(prompts)
    opened = [Image.open(images / r.image).convert("RGB") for r in records]
    responses = ["red", "it is blue", "green square", ""]
    inside = runner._scores(opened, records, responses)
    reference = load_reward_model(reward_folder).score(
        opened, [r.prompt for r in records], responses, [r.facts for r in records]
    )
    torch.testing.assert_close(inside, reference, atol=1e-5, rtol=1e-5)


def test_ppo_with_fully_trained_value_model(ppo_setup, tmp_path):
    """value_lora: null trains the whole value LLM and scores with a separate frozen reward model."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    config = ppo_config(ppo_setup, out, "train.max_steps=2", "train.save_steps=2", "ppo.value_lora=null")
    train_ppo(config)
    names = load_file(out / "checkpoint-2" / "trainable.safetensors").keys()
    assert any(n.startswith("value_model.") and "lora" not in n for n in names)
    assert all(
        math.isfinite(json.loads(line)["value_loss"]) for line in (out / "log.jsonl").read_text().splitlines()
    )


def test_cli_errors_are_one_line(tmp_path, capsys):
    from tether.cli import main

    assert main(["train", "ppo", "--set", f"train.output_dir={tmp_path}", "--set", "train.max_steps=1"]) == 2
    assert "data.train lists no prompt files" in capsys.readouterr().err
    assert main(["train", "reward", "--no-facts", "--output-dir", str(tmp_path)]) == 2
    assert "data.train lists no preference files" in capsys.readouterr().err
