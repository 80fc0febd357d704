import pytest
from decoding_helpers import WORDS


@pytest.fixture(autouse=True)
def every_test_on_one_thread(one_thread):
    """Every decoding test runs on one torch thread (the shared ``one_thread`` fixture)."""


@pytest.fixture(scope="session")
def llava_checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("llava"), WORDS)


@pytest.fixture(scope="session")
def llava(llava_checkpoint):
    from tether.models import load

    return load(llava_checkpoint)
