"""Read one scene of a built world back, with every text written from it (`tether world show`)."""

import json
from pathlib import Path

from tether.data.io import iter_jsonl
from tether.errors import TetherError
from tether.world.scene import Scene


def load_scenes(world_dir, split: str) -> list[Scene]:
    """The scene graphs of one split of a built world (the unlabeled split's graphs are kept apart)."""
    name = "unlabeled_truth" if split == "unlabeled" else split
    path = Path(world_dir) / "scenes" / f"{name}.jsonl"
    if not (Path(world_dir) / "world.json").is_file():
        raise TetherError(
            f"{world_dir} is not a world folder (no world.json); run `tether world build` first"
        )
    return [Scene.from_dict(record) for _, record in iter_jsonl(path)]


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
