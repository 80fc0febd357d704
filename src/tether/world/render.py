"""Draw a scene graph as an RGB image with PIL.

Drawing is aliased (no anti-aliasing), so with ``noise_std = 0`` every pixel is exactly the
background colour or one object's colour: tests can check that objects are where the graph says.
"""

import hashlib
import math

from PIL import Image, ImageDraw

from tether.world import vocab
from tether.world.scene import Scene


def render(scene: Scene, image_size: int, noise_std: float = 0.0, seed: str = "") -> Image.Image:
    """Render ``scene``; optional Gaussian noise is seeded by ``seed`` so it is deterministic too."""
    image = Image.new("RGB", (image_size, image_size), vocab.BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        draw_shape(draw, obj.shape, obj.bbox, vocab.COLORS[obj.color])
    if noise_std > 0:
        image = _add_noise(image, noise_std, seed or scene.image_id)
    return image


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, bbox, fill) -> None:
    x0, y0, x1, y1 = bbox
    # PIL boxes are inclusive; scene boxes exclude x1/y1.
    box = (x0, y0, x1 - 1, y1 - 1)
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, round(w / 4)))
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=fill)
    elif shape == "cross":
        arm = max(2, round(w / 3))
        draw.rectangle((round(cx - arm / 2), y0, round(cx + arm / 2) - 1, y1 - 1), fill=fill)
        draw.rectangle((x0, round(cy - arm / 2), x1 - 1, round(cy + arm / 2) - 1), fill=fill)
    elif shape == "heart":
        r = w / 4  # two lobes side by side on top, a point at the bottom
        draw.ellipse((x0, y0, x0 + 2 * r - 1, y0 + 2 * r - 1), fill=fill)
        draw.ellipse((x1 - 2 * r, y0, x1 - 1, y0 + 2 * r - 1), fill=fill)
        draw.polygon([(x0, y0 + 1.2 * r), (x1 - 1, y0 + 1.2 * r), (cx - 0.5, y1 - 1)], fill=fill)
    elif shape == "star":
        outer, inner = (w - 1) / 2, (w - 1) / 5
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else inner
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"no drawing for shape '{shape}'")


def _add_noise(image: Image.Image, noise_std: float, seed: str) -> Image.Image:
    import numpy as np

    # A seed from the image id (not Python's salted hash) keeps noisy worlds reproducible.
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(f"noise:{seed}".encode()).digest()[:8], "little")
    )
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(
        0.0, noise_std, size=(image.height, image.width, 3)
    )
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
