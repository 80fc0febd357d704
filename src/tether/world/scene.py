"""Scene graphs (the ground truth) and the sampler with the co-occurrence bias.

Each scene is sampled from its own ``random.Random(f"{seed}:{split}:{index}")``, so a scene depends
only on the seed, its split and its index: the same seed gives the same world, and growing a split
does not change the scenes already in it.
"""

import random
from dataclasses import asdict, dataclass, field

from tether.world import vocab
from tether.world.config import WorldConfig


@dataclass
class SceneObject:
    shape: str  # canonical name
    color: str
    size: str
    cell: tuple[int, int]  # (row, col) in the grid
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1/y1 exclusive


@dataclass
class Scene:
    image_id: str  # "<split>_<index>"
    image: str  # file name under DIR/images
    objects: list[SceneObject]
    relations: list[tuple[int, str, int]] = field(default_factory=list)  # (i, "left of" | "above", j)

    def shapes(self) -> set[str]:
        return {o.shape for o in self.objects}

    def count(self, shape: str) -> int:
        return sum(o.shape == shape for o in self.objects)

    def to_dict(self) -> dict:
        return {
            "image_id": self.image_id,
            "image": self.image,
            "objects": [{**asdict(o), "cell": list(o.cell), "bbox": list(o.bbox)} for o in self.objects],
            "relations": [list(r) for r in self.relations],
        }

    @classmethod
    def from_dict(cls, record: dict) -> "Scene":
        objects = [
            SceneObject(o["shape"], o["color"], o["size"], tuple(o["cell"]), tuple(o["bbox"]))
            for o in record["objects"]
        ]
        relations = [tuple(r) for r in record.get("relations", [])]
        return cls(record["image_id"], record["image"], objects, relations)


def derive_relations(objects: list[SceneObject]) -> list[tuple[int, str, int]]:
    """'left of' when i's column is smaller than j's; 'above' when i's row is smaller than j's."""
    relations = []
    for i, a in enumerate(objects):
        for j, b in enumerate(objects):
            if a.cell[1] < b.cell[1]:
                relations.append((i, "left of", j))
            if a.cell[0] < b.cell[0]:
                relations.append((i, "above", j))
    return relations


def sample_shapes(rng: random.Random, n: int, config: WorldConfig, biased: bool) -> list[str]:
    """Draw about ``n`` shapes (repeats allowed).

    In a biased split, a pair member is added alone (without its partner) only with probability
    1 - cooccurrence_prob; otherwise it comes with its partner. When the scene is full, the pair
    makes room: the scene grows by one (up to max_objects), or the pair replaces an unpaired shape,
    or the draw is repeated. So P(partner in scene | member in scene) is close to cooccurrence_prob.
    """
    if not biased:
        return [rng.choice(config.shapes) for _ in range(n)]
    weights = [1.0 / (rank + 1) ** config.frequency_skew for rank in range(len(config.shapes))]
    partner = config.partner_of()
    alone = _alone_probabilities(config, dict(zip(config.shapes, weights)))
    shapes: list[str] = []
    banned = set()  # partners of members that were added alone: they stay alone
    redraws = 0
    while len(shapes) < n:
        shape = rng.choices(config.shapes, weights)[0]
        mate = partner.get(shape)
        if shape in banned:
            continue
        if mate is None or mate in shapes or shape in shapes:
            shapes.append(shape)
        elif rng.random() < alone[shape]:
            shapes.append(shape)  # the minority of scenes that break the pair
            banned.add(mate)
        elif n - len(shapes) >= 2:
            shapes += [shape, mate]
        elif n < config.max_objects:
            n += 1
            shapes += [shape, mate]
        elif free := [i for i, s in enumerate(shapes) if s not in partner]:
            shapes[rng.choice(free)] = shape
            shapes.append(mate)
        elif redraws < 100:
            redraws += 1
        else:
            shapes.append(shape)  # every shape is paired and cooccurrence_prob = 1: give up
    rng.shuffle(shapes)
    return shapes


def _alone_probabilities(config: WorldConfig, weights: dict[str, float]) -> dict[str, float]:
    """Probability that a drawn pair member is added without its partner.

    A member also enters scenes as its partner's partner, so 1 - p would overshoot. With draw weights
    w_a, w_b, pairs enter at rate (1 - q_a) w_a + (1 - q_b) w_b and lone a at q_a w_a;
    P(b | a) = p for both members when q_a w_a = q_b w_b = (w_a + w_b)(1 - p) / (2 - p).
    """
    p = config.cooccurrence_prob
    alone = {}
    for a, b in config.cooccurrence_pairs:
        lone_rate = (weights[a] + weights[b]) * (1 - p) / (2 - p)
        alone[a], alone[b] = min(1.0, lone_rate / weights[a]), min(1.0, lone_rate / weights[b])
    return alone


def sample_scene(config: WorldConfig, split: str, index: int) -> Scene:
    """The scene at ``index`` of ``split``: shapes, colours, sizes, cells, pixel boxes, relations."""
    rng = random.Random(f"{config.seed}:{split}:{index}")
    n = rng.randint(config.min_objects, config.max_objects)
    shapes = sample_shapes(rng, n, config, config.is_biased(split))
    n = len(shapes)
    cells = rng.sample([(r, c) for r in range(config.grid_size) for c in range(config.grid_size)], n)
    # Reading order (top-left to bottom-right) makes object indices stable and texts natural.
    cells.sort()
    objects = []
    for shape, cell in zip(shapes, cells):
        size = rng.choice(config.sizes)
        objects.append(
            SceneObject(shape, rng.choice(config.colors), size, cell, _bbox(rng, cell, size, config))
        )
    return Scene(f"{split}_{index}", f"{split}_{index}.png", objects, derive_relations(objects))


def _bbox(rng: random.Random, cell: tuple[int, int], size: str, config: WorldConfig) -> tuple:
    cell_px = config.image_size / config.grid_size
    side = max(4, round(cell_px * vocab.SIZES[size]))
    slack = max(0, int((cell_px - side) // 2))
    jitter = min(config.jitter, slack)
    cx = (cell[1] + 0.5) * cell_px + rng.randint(-jitter, jitter)
    cy = (cell[0] + 0.5) * cell_px + rng.randint(-jitter, jitter)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    return (x0, y0, x0 + side, y0 + side)


def sample_split(config: WorldConfig, split: str) -> list[Scene]:
    return [sample_scene(config, split, i) for i in range(config.split_sizes()[split])]
