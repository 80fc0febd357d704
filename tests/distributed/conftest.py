import pytest
from ddp_helpers import build_checkpoint, initial_weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny llava the equality tests train (``ddp_helpers.build_checkpoint``)."""
    return build_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def initial(checkpoint):
    """Its parameters before training, named as the trainer's checkpoints name them."""
    return initial_weights(checkpoint)
