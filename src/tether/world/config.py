"""`WorldConfig`: every setting of a synthetic world, loaded from a YAML recipe (configs/world/)."""

from dataclasses import dataclass, field

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.world import vocab

SPLITS = ("train", "val", "test", "unlabeled", "pref")


@dataclass
class WorldConfig:
    seed: int = 0
    image_size: int = 64
    grid_size: int = 3  # objects sit in distinct cells of a grid_size x grid_size grid
    n_train: int = 2000
    n_val: int = 200
    n_test: int = 500
    n_unlabeled: int = 500
    # Annotated images drawn like test (bias broken), never in instruction data: where preference pairs
    # and RLHF prompts come from (HA-DPO's and LLaVA-RLHF's annotated images beyond the SFT set).
    n_pref: int = 0
    min_objects: int = 1
    max_objects: int = 3
    # Shape order is popularity order: with frequency_skew > 0 the first shapes are the most frequent.
    shapes: list[str] = field(default_factory=lambda: list(vocab.SHAPES))
    colors: list[str] = field(default_factory=lambda: list(vocab.COLORS))
    sizes: list[str] = field(default_factory=lambda: list(vocab.SIZES))
    # Language prior: in biased splits, when one shape of a pair is in a scene, its partner is too
    # with about this probability (like fork/knife in COCO).
    cooccurrence_pairs: list[list[str]] = field(
        default_factory=lambda: [["circle", "square"], ["triangle", "star"], ["diamond", "cross"]]
    )
    cooccurrence_prob: float = 0.9
    # Shape i is drawn with weight 1 / (i + 1) ** frequency_skew in biased splits (0 = uniform).
    frequency_skew: float = 0.5
    # The test split breaks the bias (uniform, independent shapes) unless this is true.
    test_bias: bool = False
    jitter: int = 2  # max pixel offset of an object's centre inside its cell
    noise_std: float = 0.0  # Gaussian pixel noise (0-255 scale); 0 keeps colours exact
    descriptions_per_image: int = 2
    pope_objects_per_image: int = 3  # yes questions per image (and as many no questions)
    mme_images_per_subtask: int = 30
    mmhal_items: int = 96
    amber_hallu_objects: int = 3

    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.n_train,
            "val": self.n_val,
            "test": self.n_test,
            "unlabeled": self.n_unlabeled,
            "pref": self.n_pref,
        }

    def is_biased(self, split: str) -> bool:
        return split not in ("test", "pref") or self.test_bias

    def partner_of(self) -> dict[str, str]:
        partners = {}
        for a, b in self.cooccurrence_pairs:
            partners[a], partners[b] = b, a
        return partners

    def validate(self) -> "WorldConfig":
        """Raise TetherError naming the first bad setting; return self."""
        _check_subset("shapes", self.shapes, vocab.SHAPES)
        _check_subset("colors", self.colors, list(vocab.COLORS))
        _check_subset("sizes", self.sizes, list(vocab.SIZES))
        if len(self.shapes) < 2 or len(self.colors) < 2:
            raise TetherError("world config: need at least 2 shapes and 2 colors")
        if not 32 <= self.image_size <= 512:
            raise TetherError(f"world config: image_size must be in [32, 512], got {self.image_size}")
        if not 1 <= self.grid_size <= 8:
            raise TetherError(f"world config: grid_size must be in [1, 8], got {self.grid_size}")
        if not 1 <= self.min_objects <= self.max_objects <= min(5, self.grid_size**2):
            raise TetherError(
                "world config: need 1 <= min_objects <= max_objects <= min(5, grid_size**2), got "
                f"{self.min_objects}..{self.max_objects} on a {self.grid_size}x{self.grid_size} grid"
            )
        for name, count in self.split_sizes().items():
            if count < 0:
                raise TetherError(f"world config: n_{name} must be >= 0")
        if not 0.0 <= self.cooccurrence_prob <= 1.0:
            raise TetherError("world config: cooccurrence_prob must be in [0, 1]")
        members = []
        for pair in self.cooccurrence_pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise TetherError(f"world config: a co-occurrence pair is two different shapes, got {pair}")
            _check_subset("cooccurrence_pairs", pair, self.shapes)
            members += pair
        if len(set(members)) != len(members):
            raise TetherError("world config: a shape may belong to one co-occurrence pair only")
        if self.jitter < 0 or self.noise_std < 0 or self.frequency_skew < 0:
            raise TetherError("world config: jitter, noise_std and frequency_skew must be >= 0")
        return self


def _check_subset(key: str, values: list[str], allowed: list[str]) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise TetherError(f"world config: {key}: unknown {unknown}; known: {allowed}")


def load_world_config(path=None, overrides: list[str] | None = None) -> WorldConfig:
    """Load a WorldConfig from YAML (or defaults) plus ``--set`` overrides, and validate it."""
    return load_config(WorldConfig, path, overrides).validate()
