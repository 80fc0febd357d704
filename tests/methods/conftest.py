import json

import pytest
from PIL import Image

from tether.data.negatives import load_negatives
from tether.data.sft import load_sft_records
from tether.methods.hacl import attach_negatives

COLOURS = ["red", "blue", "green", "red", "blue", "green"]
SHAPES = ["square", "circle", "triangle", "circle", "triangle", "square"]


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here trains or runs tiny models: on one torch thread (tests/conftest.py)."""


@pytest.fixture
def pair_data(tmp_path):
    """Six image pairs in canonical JSONL: the chosen answer names the image's colour, the rejected one does not."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, (colour, shape) in enumerate(zip(COLOURS, SHAPES)):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        wrong = COLOURS[(i + 1) % 3]
        rows.append(
            {
                "prompt": "what color is the shape ?",
                "chosen": f"a {colour} {shape}",
                "rejected": f"a {wrong} {shape} left of a {colour} circle",
                "images": [f"{i}.png"],
            }
        )
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, images


@pytest.fixture
def hacl_data(tmp_path):
    """Six one-colour images captioned with colour + shape; negatives swap the shape (object kind)."""
    images = tmp_path / "images"
    images.mkdir()
    sft, negatives = [], []
    for i, (colour, shape) in enumerate(zip(COLOURS, SHAPES)):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        caption = f"a {colour} {shape}"
        sft.append({"image": f"{i}.png", "prompt": "describe", "response": caption})
        if i != 5:  # one caption without a negative
            wrong = SHAPES[(i + 1) % 6] if SHAPES[(i + 1) % 6] != shape else "circle"
            negatives.append(
                {
                    "image": f"{i}.png",
                    "caption": caption,
                    "negative": f"a {colour} {wrong}",
                    "kinds": ["object"],
                }
            )
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in sft) + "\n")
    (tmp_path / "neg.jsonl").write_text("\n".join(json.dumps(r) for r in negatives) + "\n")
    return tmp_path / "train.jsonl", tmp_path / "neg.jsonl", images


@pytest.fixture
def hacl_settings(tiny_checkpoint, hacl_data):
    """``hacl_settings(out, *more)``: the ``--set`` settings that train HACL on ``hacl_data`` (six
    examples, one batch) into ``out``, then ``more``."""
    train, neg, images = hacl_data

    def settings(out, *more: str) -> list[str]:
        return [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{train}]",
            f"data.negatives=[{neg}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.per_device_train_batch_size=6",
            "train.progress_bar=false",
            *more,
        ]

    return settings


@pytest.fixture
def hacl_examples(hacl_data):
    """(HACL examples with their negatives attached, images folder)."""
    train, neg, images = hacl_data
    return attach_negatives(load_sft_records(train), load_negatives(neg)), images
