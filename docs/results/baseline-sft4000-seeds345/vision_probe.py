"""Does the vision stage's tower see the facts? Its label head, read per patch on the test objects: the share
of occupied patches whose argmax shape, colour and size are right, and of empty patches given any label.

    OMP_NUM_THREADS=1 python vision_probe.py /tmp/study/seed3 test
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tether.methods.vision import LabelledImage, VisionCollator, VisionModule
from tether.models import load
from tether.study.recipe import scene_regions
from tether.world.vocab import COLORS, SHAPES, SIZES

BATCH = 32

seed_dir, split = Path(sys.argv[1]), sys.argv[2]
world, vision = seed_dir / "world", seed_dir / "baseline" / "vision"
labels = json.loads((vision / "labels.json").read_text())
vlm = load(vision / "model")
module = VisionModule(vlm, len(labels), "dense")
module.head.load_state_dict(load_file(vision / "label_head.safetensors"))
collator = VisionCollator(vlm, world / "images", labels, "dense")
scenes = [json.loads(line) for line in open(world / "scenes" / f"{split}.jsonl")][:200]
records = [
    LabelledImage(s["image"], [], [(r["bbox"], r["labels"]) for r in scene_regions(s)]) for s in scenes
]
groups = {"shape": SHAPES, "colour": COLORS, "size": SIZES}
columns = {g: [i for i, label in enumerate(labels) if label in names] for g, names in groups.items()}
right = dict.fromkeys(groups, 0)
occupied = empty = empty_labelled = 0
with torch.no_grad():
    for start in range(0, len(records), BATCH):
        batch = collator(records[start : start + BATCH])
        features = module.patch_features(batch["image_inputs"])
        logits = module.head(F.layer_norm(features, features.shape[-1:]))
        targets = batch["targets"]
        has_object = targets.sum(-1) > 0
        for group, cols in columns.items():
            correct = logits[..., cols].argmax(-1) == targets[..., cols].argmax(-1)
            right[group] += (correct & has_object).sum().item()
        occupied += has_object.sum().item()
        empty += (~has_object).sum().item()
        empty_labelled += ((logits > 0).any(-1) & ~has_object).sum().item()
result = {"split": split, "occupied_patches": occupied, **{g: right[g] / occupied for g in groups}}
print(json.dumps(result | {"empty_patches_with_a_label": empty_labelled / max(empty, 1)}))
