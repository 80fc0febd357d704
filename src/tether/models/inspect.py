"""What ``tether models info`` reports beyond ``describe()``: visual tokens at a size, projector, template."""

from PIL import Image

from tether.core.errors import TetherError
from tether.models.adapter import VisionLanguageModel


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (or one number for a square) → ``(width, height)``."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise TetherError(f"image size '{text}': expected WxH in pixels, e.g. 448x448")
    return sizes[0], sizes[1]


def module_name(root, module) -> str:
    return next(name for name, m in root.named_modules() if m is module)


def checkpoint_summary(vlm: VisionLanguageModel, size: tuple[int, int]) -> dict:
    image = Image.new("RGB", size, "gray")
    tokens = vlm.image_token_counts(vlm.image_inputs([image]))[0]
    return {
        "family": vlm.arch,
        f"visual tokens {size[0]}x{size[1]}": tokens,
        "projector": f"{module_name(vlm.base_model, vlm.projector)} ({type(vlm.projector).__name__})",
        "template": repr(vlm.prompt_text("QUESTION")),  # one user turn with an image, as the model sees it
    }
