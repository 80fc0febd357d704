"""Small data builders shared by the tests of issue 23's everyday options."""

import json

from PIL import Image


def write_pope_split(folder, split, n_images=2):
    """A POPE split file over coloured squares; its question ids start at 1 as in the real files."""
    images = folder / "images"
    images.mkdir(exist_ok=True)
    rows = []
    for i in range(n_images):
        Image.new("RGB", (32, 32), ["red", "blue", "green"][i % 3]).save(images / f"img{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no")):
            rows.append(
                {
                    "question_id": len(rows) + 1,
                    "image": f"img{i}.png",
                    "text": f"Is there a {shape} in the image?",
                    "label": label,
                }
            )
    path = folder / f"coco_pope_{split}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, images
