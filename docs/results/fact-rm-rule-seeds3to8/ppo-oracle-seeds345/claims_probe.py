"""How right are the baseline's descriptions, claim by claim? A study seed folder's baseline describes 64 images
of a split (greedy, and sampled at the temperatures given); the world's claim checker (`tether.world.claims`,
the rules of its judges) counts true and false checkable claims per description.

    OMP_NUM_THREADS=1 python claims_probe.py /tmp/study/seed3 pref 0 0.5 0.7 1.0
"""

import json
import sys
from pathlib import Path

import torch
from PIL import Image

from tether.eval.shr import split_sentences
from tether.models import load
from tether.models.decoding import DecodingSettings
from tether.world import claims
from tether.world.show import load_scenes
from tether.world.texts import DETAIL_PROMPT

BATCH = 16

seed_dir, split, temperatures = Path(sys.argv[1]), sys.argv[2], [float(t) for t in sys.argv[3:]]
world = seed_dir / "world"
grid_size = json.loads((world / "world.json").read_text())["config"]["grid_size"]
scenes = sorted(load_scenes(world, split), key=lambda s: s.image)[:64]
images = [Image.open(world / "images" / s.image).convert("RGB") for s in scenes]
vlm = load(seed_dir / "baseline" / "sft" / "model")
result = {"seed_dir": str(seed_dir), "split": split, "images": len(scenes)}
for temperature in temperatures:
    torch.manual_seed(0)
    sampled = {"do_sample": True, "temperature": temperature} if temperature else {}
    settings = DecodingSettings(max_new_tokens=48, **sampled)
    true = false = words = 0
    for start in range(0, len(scenes), BATCH):
        part = slice(start, start + BATCH)
        for scene, response in zip(
            scenes[part], vlm.generate(images[part], [DETAIL_PROMPT] * BATCH, settings)
        ):
            words += len(response.split())
            for sentence in claims.parse_text(split_sentences(response)):
                for ok, _ in claims.check_sentence(sentence, scene, grid_size):
                    true, false = true + ok, false + (not ok)
    n = len(scenes)
    result[f"temperature {temperature}"] = {
        "true_claims": true / n,
        "false_claims": false / n,
        "words": words / n,
    }
print(json.dumps(result))
