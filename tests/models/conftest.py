import pytest


@pytest.fixture
def processors_without_torchvision(monkeypatch):
    """Lets transformers' processor classes be built here: they check the class of a video processor even
    when none is given, through a mapping that needs torchvision; SmolVLM's wants num2words (videos only)."""
    from transformers.models.smolvlm import processing_smolvlm
    from transformers.processing_utils import ProcessorMixin

    check = ProcessorMixin.check_argument_for_proper_class
    monkeypatch.setattr(
        ProcessorMixin,
        "check_argument_for_proper_class",
        lambda self, name, arg: None if arg is None else check(self, name, arg),
    )
    monkeypatch.setattr(processing_smolvlm, "num2words", str)
