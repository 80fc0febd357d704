import pytest

WORDS = "red blue green square circle triangle left right above below".split()


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    """One tiny llava checkpoint (the options under test do not depend on the architecture)."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_llava"), WORDS)


