import pytest

from tether.core.errors import TetherError
from tether.world.config import WorldConfig, load_world_config
from tether.world.exports import ShapeStats
from tether.world.scene import SceneObject, derive_relations, sample_scene, sample_split


def test_same_seed_same_scene_and_other_seed_differs():
    config = WorldConfig()
    assert sample_scene(config, "train", 7) == sample_scene(WorldConfig(), "train", 7)
    others = [sample_scene(WorldConfig(seed=1), "train", i) for i in range(20)]
    assert others != [sample_scene(config, "train", i) for i in range(20)]


def test_growing_a_split_keeps_its_first_scenes():
    small = sample_split(WorldConfig(n_test=5), "test")
    large = sample_split(WorldConfig(n_test=50), "test")
    assert large[:5] == small


def test_relations_follow_cells():
    objects = [
        SceneObject("circle", "red", "small", (0, 0), (0, 0, 1, 1)),
        SceneObject("star", "blue", "small", (1, 2), (0, 0, 1, 1)),
        SceneObject("ring", "green", "small", (1, 0), (0, 0, 1, 1)),
    ]
    # circle (0,0) is above star and ring, and left of star; ring (1,0) is left of star (1,2).
    assert sorted(derive_relations(objects)) == [
        (0, "above", 1),
        (0, "above", 2),
        (0, "left of", 1),
        (2, "left of", 1),
    ]


def test_objects_sit_in_distinct_cells_inside_the_image():
    config = WorldConfig(max_objects=5, n_train=300)
    cell_px = config.image_size / config.grid_size
    for scene in sample_split(config, "train"):
        cells = [o.cell for o in scene.objects]
        assert len(set(cells)) == len(cells)
        assert config.min_objects <= len(scene.objects) <= config.max_objects
        for o in scene.objects:
            x0, y0, x1, y1 = o.bbox
            r, c = o.cell
            # the box stays inside its own cell (1 px of rounding slack)
            assert c * cell_px - 1 <= x0 < x1 <= (c + 1) * cell_px + 1
            assert r * cell_px - 1 <= y0 < y1 <= (r + 1) * cell_px + 1


def test_training_cooccurrence_is_near_the_configured_probability_and_test_breaks_it():
    config = WorldConfig(n_train=3000, n_test=3000)
    train = ShapeStats.of(sample_split(config, "train"))
    test = ShapeStats.of(sample_split(config, "test"))
    for a, b in config.cooccurrence_pairs:
        for given, other in ((a, b), (b, a)):
            assert abs(train.conditional(given, other) - 0.9) < 0.05, (given, other)
            # unbiased test: independent uniform shapes, P(other | given) ~ 1 - (7/8)^(n-1) averaged ~ 0.16
            assert test.conditional(given, other) < 0.3, (given, other)


def test_cooccurrence_probability_is_a_real_knob():
    config = WorldConfig(n_train=3000, cooccurrence_prob=0.5)
    train = ShapeStats.of(sample_split(config, "train"))
    for a, b in config.cooccurrence_pairs:
        assert abs(train.conditional(a, b) - 0.5) < 0.06


def test_test_bias_true_keeps_the_bias_in_test():
    config = WorldConfig(n_test=2000, test_bias=True)
    test = ShapeStats.of(sample_split(config, "test"))
    assert test.conditional("circle", "square") > 0.8


def test_frequency_skew_makes_early_shapes_popular():
    stats = ShapeStats.of(sample_split(WorldConfig(n_train=2000), "train"))
    assert stats.frequency["circle"] > stats.frequency["triangle"] > stats.frequency["heart"]


@pytest.mark.parametrize(
    "override",
    ["shapes=[circle, blob]", "max_objects=10", "min_objects=0", "cooccurrence_pairs=[[circle, circle]]",
     "cooccurrence_pairs=[[circle, square], [square, star]]", "cooccurrence_prob=1.5", "image_size=8",
     "colour=red"],
)  # fmt: skip
def test_bad_settings_are_named_errors(override):
    with pytest.raises(TetherError, match="world config|unknown key"):
        load_world_config(None, [override])
