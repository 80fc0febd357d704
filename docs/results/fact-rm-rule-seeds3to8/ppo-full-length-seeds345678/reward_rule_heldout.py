"""Is the reward model's weakness learning or distribution shift? Both reward models of a study seed folder
score held-out pairs of the kind they were trained on: the world's true descriptions of the val images
against their rule-written rewrites (the study's rewriter, seeded as its training pairs), with the facts.
The study's own held-out pairs (the baseline's descriptions against their corrections) are in its report.

    OMP_NUM_THREADS=1 python reward_rule_heldout.py /tmp/study/seed3
"""

import json
import random
import sys
import tempfile
from pathlib import Path

from tether.core.io import read_jsonl, write_jsonl
from tether.data.rlhf import load_preference_records
from tether.methods.reward import evaluate_reward_model, load_reward_model
from tether.study.data import rule_reward_pairs, world_negatives
from tether.world.show import load_scenes
from tether.world.texts import DETAIL_PROMPT, fact_sentences

seed_dir = Path(sys.argv[1])
seed = int(seed_dir.name.removeprefix("seed"))
world = seed_dir / "world"
grid_size = json.loads((world / "world.json").read_text())["config"]["grid_size"]
facts = {s.image: fact_sentences(s, grid_size) for s in load_scenes(world, "val")}
descriptions = [
    {"image": r["image"], "prompt": DETAIL_PROMPT, "response": r["description"]}
    for r in read_jsonl(world / "text" / "val_descriptions.jsonl")
]
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "val_descriptions.jsonl"
    write_jsonl(path, descriptions)
    pairs = rule_reward_pairs(world_negatives(path, seed), facts, Path(tmp) / "pairs.jsonl")
    records = load_preference_records(pairs)
records = random.Random(seed).sample(records, min(400, len(records)))
result = {"seed_dir": str(seed_dir), "pairs": len(records)}
for name in ("reward", "reward_vanilla"):
    model = load_reward_model(seed_dir / name / "reward_model")
    result[name] = evaluate_reward_model(model, records, world / "images")["accuracy"]
print(json.dumps(result))
