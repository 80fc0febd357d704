import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import DataError, TetherError
from tether.data.sft import load_sft_records
from tether.methods.sft import SFTCollator, SFTConfig, SFTModule, length_chunks, train_sft
from tether.methods.trainer import TRAINABLE_WEIGHTS


@pytest.fixture
def sft_data(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "question": "what color is it ?", "answer": colour})
    rows.append({"text": "a red square left of a blue circle ."})
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, images


def test_records_formats_and_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps(
            {
                "image": "x.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nwhat ?"},
                    {"from": "gpt", "value": "red"},
                    {"from": "human", "value": "and ?"},
                    {"from": "gpt", "value": "blue"},
                ],
            }
        )
        + "\n"
        + json.dumps({"image": "y.png", "prompt": "p", "response": "r"})
        + "\n"
    )
    records = load_sft_records(path)
    assert [(r.image, r.prompt, r.response) for r in records] == [
        ("x.png", "what ?", "red"),
        ("x.png", "and ?", "blue"),
        ("y.png", "p", "r"),
    ]
    path.write_text(json.dumps({"image": "y.png", "prompt": "p"}) + "\n")
    with pytest.raises(DataError, match=r"a\.jsonl:1: field 'response'"):
        load_sft_records(path)


def test_loss_is_mean_token_nll(tiny_vlm, sft_data):
    path, images = sft_data
    records = load_sft_records(path)
    batch = SFTCollator(tiny_vlm, images, split_by_length=False)(records)
    module = SFTModule(tiny_vlm)
    with torch.no_grad():
        loss = module(**batch)["loss"]
        from tether.models import ModelBatch

        sums, counts = 0.0, 0
        for key in ("image_batch", "text_batch"):
            r = tiny_vlm.response_logprobs(ModelBatch.from_dict(batch[key]))
            sums += r.summed.sum().item()
            counts += int(r.mask.sum())
    assert loss.item() == pytest.approx(-sums / counts, rel=1e-5)


def test_plain_template_collates_the_image_then_the_response(tiny_vlm, sft_data):
    # data.template: plain reaches the encoding: the question is dropped, the response follows the image
    path, images = sft_data
    records = [r for r in load_sft_records(path) if r.image is not None]
    plain = SFTCollator(tiny_vlm, images, split_by_length=False, template="plain")(records)
    chat = SFTCollator(tiny_vlm, images, split_by_length=False)(records)
    pictures = [Image.open(images / r.image).convert("RGB") for r in records]
    expected = tiny_vlm.encode(
        pictures, [r.prompt for r in records], [r.response for r in records], template="plain"
    )
    assert torch.equal(plain["image_batch"]["input_ids"], expected.input_ids)
    assert plain["image_batch"]["input_ids"].shape[1] < chat["image_batch"]["input_ids"].shape[1]


def test_sample_normalized_loss_weighs_each_response_equally(tiny_vlm, sft_data):
    # the text row's response is 9 tokens, the image rows' 1 word: per-sample and per-token means differ
    path, images = sft_data
    batch = SFTCollator(tiny_vlm, images, split_by_length=False)(load_sft_records(path))
    from tether.models import ModelBatch

    with torch.no_grad():
        loss = SFTModule(tiny_vlm, normalize="sample")(**batch)["loss"]
        per_sample = []
        for key in ("image_batch", "text_batch"):
            r = tiny_vlm.response_logprobs(ModelBatch.from_dict(batch[key]))
            for logp, mask in zip(r.per_token, r.mask):
                per_sample.append(-logp[mask].sum().item() / mask.sum().item())
        token_loss = SFTModule(tiny_vlm)(**batch)["loss"]
    assert loss.item() == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-5)
    assert abs(loss.item() - token_loss.item()) > 1e-3
    with pytest.raises(TetherError, match="normalize"):
        SFTModule(tiny_vlm, normalize="batch")


def test_length_chunks_partition_rows_at_the_cheapest_split_points():
    # 3 short rows and 2 long ones: two forwards (3 x 5 + 2 x 40 + 2 x 10) beat one (5 x 40 + 10)
    # (rows keep their batch order inside a chunk)
    assert length_chunks([40, 5, 5, 38, 4], overhead=10) == [[1, 2, 4], [0, 3]]
    # a forward costing more than the padding it saves: one batch
    assert length_chunks([40, 5, 5, 38, 4], overhead=1000) == [[0, 1, 2, 3, 4]]
    # a tie keeps the fewest forwards; the chunks partition the rows
    assert length_chunks([7, 7, 7], overhead=0) == [[0, 1, 2]]
    chunks = length_chunks([3, 50, 9, 51, 4, 30, 30, 8], overhead=20)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(8)) and len(chunks) > 1


@pytest.mark.parametrize("normalize", ["token", "sample"])
def test_length_split_batches_give_the_same_loss_and_gradients(tiny_vlm, tmp_path, normalize):
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i, colour in enumerate(["red", "blue", "green", "red", "blue", "green"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        # long enough that three short rows padded to it waste more than a forward costs
        answer = colour if i % 2 else " ".join([f"a {colour} square left of a {colour} circle"] * 16)
        records.append({"image": f"{i}.png", "prompt": "what is it ?", "response": answer})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    records = load_sft_records(path)
    module = SFTModule(tiny_vlm, normalize=normalize)
    results = []
    for split in (False, True):
        batch = SFTCollator(tiny_vlm, images, split_by_length=split)(records)
        tiny_vlm.model.zero_grad()
        loss = module(**batch)["loss"]
        loss.backward()
        grads = [p.grad.clone() for p in tiny_vlm.model.parameters() if p.grad is not None]
        results.append((loss.detach(), grads, batch["image_batch"]))
    (loss_one, grads_one, one), (loss_split, grads_split, split_batches) = results
    assert isinstance(one, dict) and len(split_batches) == 2  # short answers apart from long ones
    assert sum(len(b["input_ids"]) for b in split_batches) == len(one["input_ids"])
    padded = sum(b["input_ids"].numel() for b in split_batches)
    assert padded < one["input_ids"].numel()
    torch.testing.assert_close(loss_split, loss_one, rtol=1e-5, atol=1e-6)
    assert len(grads_split) == len(grads_one) > 0
    for a, b in zip(grads_split, grads_one):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    tiny_vlm.model.zero_grad()


def test_select_rows_refuses_a_left_padded_batch(tiny_vlm):
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    batch = tiny_vlm.encode(images, ["what ?", "what is it ?"], ["red", "a blue one"], padding_side="left")
    with pytest.raises(ValueError, match="right-padded"):
        tiny_vlm.select_rows(batch, images, [0])
    right = tiny_vlm.encode(images, ["what ?", "what is it ?"], ["red", "a blue one"])
    one = tiny_vlm.select_rows(right, images, [0])
    assert one.input_ids.shape[0] == 1 and one.attention_mask.all()  # trimmed to its own length


def test_train_sft_learns_and_resumes(tiny_checkpoint, sft_data, tmp_path):
    path, images = sft_data
    out = tmp_path / "run"
    config = load_config(
        SFTConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{path}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=30",
            "train.learning_rate=3e-3",
            "train.logging_steps=5",
            "train.save_steps=15",
            "train.per_device_train_batch_size=5",
            "train.progress_bar=false",
            "model.freeze_vision=false",
        ],
    )
    exported = train_sft(config)
    record = json.loads((out / "run.json").read_text())
    losses = [r["loss"] for r in record["log_history"] if "loss" in r]
    assert losses[-1] < losses[0] * 0.7
    assert (out / "checkpoint-30" / TRAINABLE_WEIGHTS).is_file()
    from tether.models import load

    assert load(exported).describe()["architecture"] == json.loads(
        (tiny_checkpoint / "config.json").read_text()
    )["model_type"].replace("qwen2_5_vl", "qwen2_vl")


class _Crash(Exception):
    pass


def test_interrupted_training_resumes_to_identical_weights(tiny_checkpoint, sft_data, tmp_path):
    """A run stopped after its step-10 checkpoint and rerun ends with the weights of an uninterrupted run."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from tether.data.sft import load_sft_records
    from tether.methods.trainer import run_training
    from tether.methods.tuning import load_for_training

    path, images = sft_data
    records = load_sft_records(path) * 4

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 13:
                raise _Crash

    def train(out, callbacks=None):
        config = load_config(
            SFTConfig,
            None,
            [
                f"model.path={tiny_checkpoint}",
                f"train.output_dir={out}",
                "train.max_steps=20",
                "train.save_steps=10",
                "train.per_device_train_batch_size=4",
                "train.progress_bar=false",
                "train.learning_rate=1e-3",
            ],
        )
        vlm = load_for_training(config.model)
        run_training(SFTModule(vlm), SFTCollator(vlm, images), records, config.train, callbacks=callbacks)

    train(tmp_path / "straight")
    with pytest.raises(_Crash):
        train(tmp_path / "crashed", [CrashAt()])
    assert not (tmp_path / "crashed" / "checkpoint-20").exists()
    train(tmp_path / "crashed")
    straight = load_file(tmp_path / "straight" / "checkpoint-20" / TRAINABLE_WEIGHTS)
    resumed = load_file(tmp_path / "crashed" / "checkpoint-20" / TRAINABLE_WEIGHTS)
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(straight[name], resumed[name], atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_recomputes_activations_and_trains_the_same_weights(
    tiny_checkpoint, sft_data, tmp_path, monkeypatch
):
    """``train.gradient_checkpointing`` reaches the HF model inside the method module (the Trainer alone
    called a method the module does not have), here under LoRA with frozen embeddings."""
    import torch.utils.checkpoint
    from safetensors.torch import load_file

    path, images = sft_data
    # every non-reentrant checkpointed call goes through this generator (looked up at call time)
    calls = []
    generator = torch.utils.checkpoint._checkpoint_without_reentrant_generator
    monkeypatch.setattr(
        torch.utils.checkpoint,
        "_checkpoint_without_reentrant_generator",
        lambda *a, **k: calls.append(1) or generator(*a, **k),
    )

    def train(name: str, checkpointing: bool) -> dict:
        overrides = [
            f"model.path={tiny_checkpoint}", f"data.train=[{path}]", f"data.images={images}",
            f"train.output_dir={tmp_path / name}", "train.max_steps=3", "train.progress_bar=false",
            "train.per_device_train_batch_size=5", "model.lora={r: 4, alpha: 8}",
            f"train.gradient_checkpointing={str(checkpointing).lower()}",
        ]  # fmt: skip
        train_sft(load_config(SFTConfig, None, overrides))
        return load_file(tmp_path / name / "checkpoint-3" / TRAINABLE_WEIGHTS)

    plain = train("plain", False)
    assert calls == []
    checkpointed = train("checkpointed", True)
    assert len(calls) > 0
    assert plain.keys() == checkpointed.keys()
    for name, value in plain.items():
        torch.testing.assert_close(checkpointed[name], value, atol=1e-5, rtol=1e-4)
