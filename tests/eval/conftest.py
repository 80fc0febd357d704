from pathlib import Path

import pytest


@pytest.fixture
def data_dir(shared_data) -> Path:
    """The real benchmark files: tests/conftest.py's ``shared_data`` (fails in CI when missing)."""
    return shared_data
