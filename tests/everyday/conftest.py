import pytest

from tether.cli import main

WORDS = "red blue green square circle triangle left right above below".split()


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    """One tiny llava checkpoint (the options under test do not depend on the architecture)."""
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny_llava"), WORDS)


@pytest.fixture
def run_cli(capsys):
    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
