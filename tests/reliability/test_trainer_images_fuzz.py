"""Property test of every trainer's (and pair pipeline's) data path against missing images (issue 23, 5).

Records valid but for their image, which is drawn from files that exist under the images root, files that
do not, and paths that escape it. Read with ``images=root`` as each trainer reads them, a load either
keeps only records whose image exists or stops with a ``DataError`` naming ``file:line`` of the first bad
record; with ``skip_invalid`` every record is kept or counted as skipped.
"""

import itertools
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.errors import DataError
from tether.core.io import SkipLog
from tether.data import preference, rlhf
from tether.data.answer_pairs import load_yes_no_questions
from tether.data.pairs import load_pair_images
from tether.data.sft import load_sft_records
from tether.methods.ssl import load_unlabeled_items
from tether.methods.vision import load_labelled_images

PRESENT = ("a.jpg", "sub/b.jpg")
PAIR_IDS = itertools.count()  # the pair pipeline's image ids are unique
IMAGES = st.sampled_from([*PRESENT, "missing.jpg", "sub/missing.jpg", "../a.jpg"])


def _llava_rlhf(image):
    turns = [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": ""}]
    return {"image": image, "conversations": turns, "output_1": {"value": "a"}, "output_2": {"value": "b"},
            "preference": 1}  # fmt: skip


# trainer (or pipeline) -> (record for an image, loader of a path with the trainer's options)
DATA_PATHS = {
    "sft, hacl, ssl labeled, dpo sft_train": (
        lambda image: {"image": image, "prompt": "What is it?", "response": "A cat."},
        load_sft_records,
    ),
    "dpo (tether)": (
        lambda image: {"prompt": "Describe.", "chosen": "a", "rejected": "b", "images": [image]},
        preference.load_preference_records,
    ),
    "dpo (rlaif_v)": (
        lambda image: {"question": "Describe.", "chosen": "a", "rejected": "b", "image_path": image},
        preference.load_preference_records,
    ),
    "dpo (llava_rlhf)": (_llava_rlhf, preference.load_preference_records),
    "dpo (hadpo_pope)": (
        lambda image: {
            "image_id": image.removesuffix(".jpg"),
            "question": "Cat?",
            "chosen": "Yes.",
            "reject": "No.",
            "correct": False,
        },  # fmt: skip
        preference.load_preference_records,
    ),
    "reward": (_llava_rlhf, rlhf.load_preference_records),
    "ppo": (lambda image: {"image": image, "prompt": "Is there a cat?"}, rlhf.load_prompt_records),
    "vision": (lambda image: {"image": image, "labels": ["cat"]}, load_labelled_images),
    "ssl unlabeled": (
        lambda image: {"image": image, "prompt": "Describe."},
        lambda path, **kw: load_unlabeled_items(path, **kw),
    ),
    "data answer-pairs": (
        lambda image: {"image": image, "text": "Is there a cat?", "label": "yes"},
        lambda path, **kw: load_yes_no_questions(
            path, kw.get("skip_invalid", False), kw.get("skips"), images=kw["images"]
        ),  # fmt: skip
    ),
    "data pairs": (
        lambda image: {"image_id": f"img{next(PAIR_IDS)}", "image": image, "facts": ["a cat"]},
        lambda path, **kw: load_pair_images(
            path, kw.get("skip_invalid", False), kw.get("skips"), images=kw["images"]
        ),  # fmt: skip
    ),
}


@pytest.mark.parametrize("name", sorted(DATA_PATHS))
@settings(max_examples=20, deadline=None)
@given(images=st.lists(IMAGES, min_size=1, max_size=6), as_json_list=st.booleans())
def test_every_trainer_data_path_checks_images(name, images, as_json_list):
    make, load = DATA_PATHS[name]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        for present in PRESENT:
            (root / present).parent.mkdir(parents=True, exist_ok=True)
            (root / present).write_bytes(b"not decoded here")
        path = Path(folder) / "data.json"
        rows = [make(image) for image in images]
        path.write_text(json.dumps(rows) if as_json_list else "".join(json.dumps(r) + "\n" for r in rows))
        first_bad = next((i for i, image in enumerate(images, start=1) if image not in PRESENT), None)

        try:
            strict = load(path, images=root)
        except DataError as e:
            assert first_bad is not None and str(e).startswith(f"{path}:{first_bad}: "), str(e)
        else:
            assert first_bad is None and len(strict) == len(images)

        skips = SkipLog()
        kept = load(path, images=root, skip_invalid=True, skips=skips)
        assert all(getattr(record, "image", None) in PRESENT for record in kept)
        assert len(kept) == sum(image in PRESENT for image in images)
        assert skips.skipped == len(images) - len(kept)
