import pytest
import torch
from decoding_helpers import WORDS


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def llava_checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("llava"), WORDS)


@pytest.fixture(scope="session")
def llava(llava_checkpoint):
    from tether.models import load

    return load(llava_checkpoint)
