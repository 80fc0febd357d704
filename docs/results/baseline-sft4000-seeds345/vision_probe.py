"""Per-patch accuracy of the vision stage's label head on test objects: shape, colour, size (argmax per group)."""
import json, sys
from pathlib import Path
import torch, torch.nn.functional as F
from safetensors.torch import load_file
from tether.data.images import open_image
from tether.models import load
from tether.methods.vision import VisionModule, VisionCollator
from tether.world.baseline import scene_regions
from tether.world.vocab import COLORS, SHAPES, SIZES  # noqa

seed_dir = Path(sys.argv[1]); split = sys.argv[2] if len(sys.argv) > 2 else "test"
world = seed_dir / "world"
v = seed_dir / "baseline" / "vision"
labels = json.loads((v / "labels.json").read_text())
vlm = load(v / "model")
mod = VisionModule(vlm, len(labels), "dense"); mod.head.load_state_dict(load_file(v / "label_head.safetensors"))
col = VisionCollator(vlm, world / "images", labels, "dense")
from tether.methods.vision import LabelledImage
scenes = [json.loads(l) for l in open(world / "scenes" / f"{split}.jsonl")][:200]
recs = [LabelledImage(s["image"], [], [(r["bbox"], r["labels"]) for r in scene_regions(s)]) for s in scenes]
groups = {"shape": [l for l in labels if l in SHAPES], "colour": [l for l in labels if l in COLORS], "size": [l for l in labels if l in SIZES]}
idx = {g: [labels.index(l) for l in ls] for g, ls in groups.items()}
right = {g: 0 for g in groups}; n = 0; empty_fp = 0; empty = 0
with torch.no_grad():
    for i in range(0, len(recs), 32):
        b = col(recs[i:i+32]); f = mod.patch_features(b["image_inputs"]); f = F.layer_norm(f, f.shape[-1:])
        logits = mod.head(f); t = b["targets"]
        occ = t.sum(-1) > 0
        for g, ix in idx.items():
            pred = logits[..., ix].argmax(-1); true = t[..., ix].argmax(-1)
            right[g] += ((pred == true) & occ).sum().item()
        n += occ.sum().item()
        empty += (~occ).sum().item(); empty_fp += ((logits > 0).any(-1) & ~occ).sum().item()
print(json.dumps({"split": split, "occupied_patches": n, **{g: right[g] / n for g in groups}, "empty_patches_with_a_label": empty_fp / max(empty, 1)}))
