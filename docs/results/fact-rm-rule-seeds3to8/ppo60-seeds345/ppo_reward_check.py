"""Does PPO raise its own reward model's score? The baseline and the PPO policy answer the same 96 PPO prompts
(greedy, 48 new tokens); the fact reward model scores both. One study seed folder per run:

    OMP_NUM_THREADS=1 python ppo_reward_check.py /tmp/study/seed3
"""

import json
import sys
from pathlib import Path

import torch
from PIL import Image

from tether.core.io import read_jsonl
from tether.methods.reward import load_reward_model
from tether.models import load
from tether.models.decoding import DecodingSettings

BATCH = 16

seed_dir = Path(sys.argv[1])
prompts = read_jsonl(seed_dir / "ppo" / "prompts.jsonl")[:96]
images = [Image.open(seed_dir / "world" / "images" / p["image"]).convert("RGB") for p in prompts]
questions = [p["prompt"] for p in prompts]
facts = [p["facts"] for p in prompts]
reward_model = load_reward_model(seed_dir / "reward" / "reward_model")
mean_reward = {}
for name, path in [
    ("baseline", seed_dir / "baseline" / "sft" / "model"),
    ("ppo", seed_dir / "ppo" / "model"),
]:
    vlm = load(path)
    scores = []
    for i in range(0, len(prompts), BATCH):
        part = slice(i, i + BATCH)
        responses = vlm.generate(images[part], questions[part], DecodingSettings(max_new_tokens=48))
        with torch.no_grad():
            scores.append(reward_model.score(images[part], questions[part], responses, facts=facts[part]))
    mean_reward[name] = torch.cat(scores).mean().item()
print(json.dumps({"seed_dir": str(seed_dir), **mean_reward}))
