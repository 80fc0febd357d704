import json
from pathlib import Path

import pytest

from tether.world.build import build_world
from tether.world.config import load_world_config
from tether.world.scene import Scene

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "configs" / "world" / "smoke.yaml"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    # CI: shared/ beside the repo (parents[3] from tests/world/). A helper worktree sits one level
    # deeper (/work/wt/NAME beside /work/shared), so look one folder further up as well.
    candidates = [Path(__file__).resolve().parents[k] / "shared" / "data" for k in (3, 4)]
    path = next((p for p in candidates if p.is_dir()), candidates[0])
    if not path.is_dir():
        pytest.skip(f"real benchmark files not found at {path} (CI checks shared/ out beside the repo)")
    return path


@pytest.fixture(scope="session")
def smoke_config():
    return load_world_config(SMOKE_CONFIG)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory, smoke_config) -> Path:
    out = tmp_path_factory.mktemp("world") / "smoke"
    build_world(smoke_config, out)
    return out


def read_scenes(world: Path, split: str) -> dict[str, Scene]:
    lines = (world / "scenes" / f"{split}.jsonl").read_text().splitlines()
    return {s.image_id: s for s in (Scene.from_dict(json.loads(line)) for line in lines)}
