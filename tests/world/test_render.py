import pytest

from tether.world import vocab
from tether.world.config import WorldConfig
from tether.world.render import render
from tether.world.scene import Scene, SceneObject, sample_split


def _pixels_in(image, bbox):
    x0, y0, x1, y1 = bbox
    return [image.getpixel((x, y)) for y in range(y0, y1) for x in range(x0, x1)]


def test_every_object_is_drawn_in_its_box_and_nothing_outside():
    config = WorldConfig(max_objects=5, n_val=60)
    for scene in sample_split(config, "val"):
        image = render(scene, config.image_size)
        assert image.size == (64, 64) and image.mode == "RGB"
        for obj in scene.objects:
            pixels = _pixels_in(image, obj.bbox)
            share = pixels.count(vocab.COLORS[obj.color]) / len(pixels)
            # filled shapes cover >= ~40% of their box (a star the least), a ring >= ~30%
            assert share > 0.25, (scene.image_id, obj)
            assert set(pixels) <= {vocab.COLORS[obj.color], vocab.BACKGROUND_RGB}
        inside = set()
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.bbox
            inside |= {(x, y) for x in range(x0, x1) for y in range(y0, y1)}
        outside = [image.getpixel((x, y)) for x in range(64) for y in range(64) if (x, y) not in inside]
        assert set(outside) == {vocab.BACKGROUND_RGB}


@pytest.mark.parametrize("shape", vocab.SHAPES)
def test_each_shape_has_its_own_footprint(shape):
    # A 30 px box: filled shapes colour the centre; a ring leaves its centre empty.
    scene = Scene("x_0", "x_0.png", [SceneObject(shape, "red", "large", (0, 0), (10, 10, 40, 40))])
    image = render(scene, 64)
    centre = image.getpixel((25, 25))
    assert centre == (vocab.BACKGROUND_RGB if shape == "ring" else vocab.COLORS["red"])
    share = _pixels_in(image, (10, 10, 40, 40)).count(vocab.COLORS["red"]) / 900
    expected = {
        "square": (0.99, 1.0),
        "circle": (0.75, 0.82),
        "triangle": (0.45, 0.55),
        "diamond": (0.45, 0.55),
    }
    low, high = expected.get(shape, (0.2, 0.8))
    assert low <= share <= high, share


def test_noise_is_deterministic_and_changes_pixels():
    scene = sample_split(WorldConfig(n_test=1), "test")[0]
    a, b = render(scene, 64, noise_std=8.0), render(scene, 64, noise_std=8.0)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != render(scene, 64).tobytes()
