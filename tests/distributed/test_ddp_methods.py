"""DPO and HACL with two CPU processes (torchrun, gloo) train to the weights of one process with the same
global batch. The data make the per-process mean losses average to the global mean exactly: DPO's loss is
a mean over pairs (equal pairs per process); HACL's language loss a mean over caption tokens (every caption
has the same number), and its contrastive terms see the whole global batch (negatives gathered)."""

import json

import pytest
from ddp_helpers import assert_same_trained_weights, train
from PIL import Image

COLOURS = ["red", "blue", "green", "white"]
SHAPES = ["square", "circle", "triangle", "square"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    words = COLOURS + SHAPES[:3] + "a what is it ? describe".split()
    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny"), words)


@pytest.fixture(scope="module")
def initial(checkpoint):
    from tether.models import load

    return {f"model.{n}": p.detach().clone() for n, p in load(checkpoint).model.named_parameters()}


def images(tmp_path, n=8):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (32, 32), COLOURS[i % 4]).save(folder / f"{i}.png")
    return folder


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


COMMON = ["train.learning_rate=1e-3", "train.progress_bar=false", "train.lr_scheduler_type=constant"]


def test_dpo_two_processes_equal_one(checkpoint, initial, tmp_path):
    folder = images(tmp_path)
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "prompt": "what is it ?",
                "chosen": f"a {COLOURS[i % 4]} {SHAPES[i % 4]}",
                "rejected": f"a {COLOURS[(i + 1) % 4]} {SHAPES[(i + 2) % 4]}",
                "images": [f"{i}.png"],
            }
            for i in range(8)
        ],
    )
    settings = [
        f"model.path={checkpoint}",
        "model.freeze_vision=true",
        f"data.train=[{pairs}]",
        f"data.images={folder}",
        "train.max_steps=2",
        "train.save_steps=2",
        *COMMON,
    ]
    one = train("dpo", settings + ["train.per_device_train_batch_size=4"], tmp_path / "one", processes=1)
    two = train("dpo", settings + ["train.per_device_train_batch_size=2"], tmp_path / "two", processes=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert_same_trained_weights(tmp_path / "one", tmp_path / "two", 2, initial)


def test_hacl_two_processes_equal_one_with_gathered_negatives(checkpoint, initial, tmp_path):
    folder = images(tmp_path)
    captions, negatives = [], []
    for i in range(8):
        caption = f"a {COLOURS[i % 4]} {SHAPES[i % 4]}"  # three tokens each
        captions.append({"image": f"{i}.png", "prompt": "describe", "response": caption})
        wrong = SHAPES[(i + 1) % 3] if SHAPES[(i + 1) % 3] != SHAPES[i % 4] else SHAPES[(i + 2) % 3]
        negatives.append(
            {
                "image": f"{i}.png",
                "caption": caption,
                "negative": f"a {COLOURS[i % 4]} {wrong}",
                "kinds": ["object"],
            }
        )
    settings = [
        f"model.path={checkpoint}",
        "model.freeze_llm=true",
        "model.freeze_vision=true",
        "model.freeze_projector=false",
        f"data.train=[{write_jsonl(tmp_path / 'captions.jsonl', captions)}]",
        f"data.negatives=[{write_jsonl(tmp_path / 'negatives.jsonl', negatives)}]",
        f"data.images={folder}",
        "hacl.gather_across_processes=true",
        "train.max_steps=2",
        "train.save_steps=2",
        *COMMON,
    ]
    one = train("hacl", settings + ["train.per_device_train_batch_size=4"], tmp_path / "one", processes=1)
    two = train("hacl", settings + ["train.per_device_train_batch_size=2"], tmp_path / "two", processes=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert_same_trained_weights(tmp_path / "one", tmp_path / "two", 2, initial)
    # without the gather each process contrasts its own half-batch: a different (smaller-batch) objective
    local = settings + ["hacl.gather_across_processes=false", "train.per_device_train_batch_size=2"]
    train("hacl", local, tmp_path / "local", processes=2)
    with pytest.raises(AssertionError, match="not close"):
        assert_same_trained_weights(tmp_path / "one", tmp_path / "local", 2, initial)
