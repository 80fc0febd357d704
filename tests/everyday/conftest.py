import json

import pytest
from PIL import Image

from tether.cli import main


WORDS = "red blue green square circle triangle left right above below".split()


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    """One tiny llava checkpoint (the options under test do not depend on the architecture)."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_llava"), WORDS)


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


@pytest.fixture
def run_cli(capsys):
    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
