import json

import pytest
from PIL import Image

COLOURS = ["red", "blue", "green", "red", "blue", "green"]
SHAPES = ["square", "circle", "triangle", "circle", "triangle", "square"]


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
