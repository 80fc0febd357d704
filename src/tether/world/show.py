"""Read a built world back: one scene with every text written from it (`tether world show`), the words of
its files (`tether models tiny --for-world`)."""

import json
from pathlib import Path

from tether.core.errors import TetherError
from tether.core.io import iter_jsonl, read_json, read_records, read_text_lines
from tether.world.scene import Scene
from tether.world.texts import IMAGE_TOKEN, world_words
from tether.world.vocab import split_words

# the fields of the world's text and benchmark files that hold words a model reads (not file names or ids)
TEXT_FIELDS = (
    "caption",
    "description",
    "question",
    "answer",
    "text",
    "prompt",
    "value",
    "query",
    "gt_answer",
)


def require_world(world_dir) -> Path:
    if not (Path(world_dir) / "world.json").is_file():
        raise TetherError(
            f"{world_dir} is not a world folder (no world.json); run `tether world build` first"
        )
    return Path(world_dir)


def load_scenes(world_dir, split: str) -> list[Scene]:
    """The scene graphs of one split of a built world (the unlabeled split's graphs are kept apart)."""
    name = "unlabeled_truth" if split == "unlabeled" else split
    path = require_world(world_dir) / "scenes" / f"{name}.jsonl"
    return [Scene.from_dict(record) for _, record in iter_jsonl(path)]


def world_vocabulary(world_dir) -> list[str]:
    """``world_words()``, then any other word of the world's text and benchmark JSONL files (a world written by
    another tether version may say more), in ``split_words`` tokens: a tiny model's vocabulary for the world."""
    known = world_words()
    world = require_world(world_dir)
    texts = []
    for path in sorted([*(world / "text").glob("*.jsonl"), *(world / "bench").glob("*/*.json*")]):
        data = read_json(path) if path.suffix == ".json" else [record for _, record in read_records(path)]
        if isinstance(data, list):  # records (not the ground-truth and synonym tables)
            texts += [text for record in data if isinstance(record, dict) for text in _text_values(record)]
    for path in sorted((world / "bench").glob("mme/*/questions_answers_YN/*.txt")):
        texts += read_text_lines(path)
    extra = {word for text in texts for word in split_words(text.replace(IMAGE_TOKEN, " "))}
    return known + sorted(extra - set(known))


def _text_values(record):
    for key, value in record.items():
        if key == "conversations" and isinstance(value, list):
            for turn in value:
                if isinstance(turn, dict):
                    yield from _text_values(turn)
        elif key in TEXT_FIELDS and isinstance(value, str):
            yield value


def show_scene(world_dir, split: str, index: int) -> str:
    """A readable dump: the scene graph, then captions, descriptions, QA and conversations."""
    scenes = load_scenes(world_dir, split)
    if not 0 <= index < len(scenes):
        raise TetherError(f"--index {index} is out of range: split '{split}' has {len(scenes)} scenes")
    scene = scenes[index]
    lines = [f"{scene.image_id}  (images/{scene.image})", "objects:"]
    for i, o in enumerate(scene.objects):
        lines.append(f"  [{i}] {o.size} {o.color} {o.shape}  cell={list(o.cell)} bbox={list(o.bbox)}")
    lines.append("relations: " + (", ".join(f"{i} {rel} {j}" for i, rel, j in scene.relations) or "none"))
    text_dir = Path(world_dir) / "text"
    for kind in ("captions", "descriptions", "qa", "conversations"):
        path = text_dir / f"{split}_{kind}.jsonl"
        if not path.is_file():
            continue
        lines.append(f"{kind}:")
        for _, record in iter_jsonl(path):
            if record["image_id"] != scene.image_id:
                continue
            if kind == "qa":
                lines.append(f"  [{record['qa_type']}] {record['question']} -> {record['answer']}")
            elif kind == "conversations":
                lines += [
                    f"  {turn['from']}: {json.dumps(turn['value'])}" for turn in record["conversations"]
                ]
            else:
                lines.append(f"  {record[kind[:-1]]}")
    return "\n".join(lines)
