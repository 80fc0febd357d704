"""Helpers of the world tests, imported by name (``from world_helpers import ...``): importing them from
``conftest`` picks whichever conftest pytest loaded last when several folders are collected together."""

import json
from pathlib import Path

from tether.world.scene import Scene

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "world" / "smoke.yaml"


def read_scenes(world: Path, split: str) -> dict[str, Scene]:
    lines = (world / "scenes" / f"{split}.jsonl").read_text().splitlines()
    return {s.image_id: s for s in (Scene.from_dict(json.loads(line)) for line in lines)}
