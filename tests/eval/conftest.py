from pathlib import Path

import pytest


def _find_shared_data() -> Path:
    """``shared/data`` beside the checkout: /work/main/tests/eval -> /work/shared/data in CI; a worktree
    one level deeper (/work/wt/eval) finds the same folder, so search upwards instead of a fixed depth."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "shared" / "data"


DATA = _find_shared_data()


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    return DATA


