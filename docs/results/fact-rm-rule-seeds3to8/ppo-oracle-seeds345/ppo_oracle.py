"""Is the judge the limit, or PPO? PPO of a study seed folder's baseline with the reward model's score replaced
by an oracle from the preference images' scene graphs (the rules of `tether.world.claims`): for a description,
0.2 · true claims − 1.0 · false claims; for a yes/no question 0 (PPO's yes/no bonus scores it). Every other
setting is the study's PPO stage's (its run.json), without the length term. Then the study's benchmarks.

    OMP_NUM_THREADS=1 python ppo_oracle.py /tmp/study/seed3 /tmp/oracle/seed3 [--symmetric]

--symmetric: 1.0 · true claims − 1.0 · false claims instead (oracle_b).
"""

import dataclasses
import json
import sys
from pathlib import Path

from tether.core.config import from_dict
from tether.core.io import read_jsonl, write_json
from tether.eval.shr import split_sentences
from tether.methods.ppo import PPOConfig, train_ppo
from tether.study.evaluate import evaluate_model
from tether.study.preset import PRESETS
from tether.world import claims
from tether.world.show import load_scenes

TRUE_CLAIM, FALSE_CLAIM = (1.0, -1.0) if "--symmetric" in sys.argv else (0.2, -1.0)

seed_dir, out = Path(sys.argv[1]), Path(sys.argv[2])  # then --symmetric: oracle_b
world = seed_dir / "world"
grid_size = json.loads((world / "world.json").read_text())["config"]["grid_size"]
scenes = {s.image: s for s in load_scenes(world, "pref")}


def oracle(records, responses):
    scores = []
    for record, response in zip(records, responses):
        if record.answer:  # a yes/no question: left to the symbolic bonus
            scores.append(0.0)
            continue
        checked = [
            ok
            for sentence in claims.parse_text(split_sentences(response))
            for ok, _ in claims.check_sentence(sentence, scenes[record.image], grid_size)
        ]
        scores.append(TRUE_CLAIM * sum(checked) + FALSE_CLAIM * (len(checked) - sum(checked)))
    return scores


raw = json.loads((seed_dir / "ppo" / "run.json").read_text())["config"]
raw["train"]["output_dir"] = str(out / "ppo")
raw["ppo"]["length_bonus"] = 0.0
config = from_dict(PPOConfig, raw, where="ppo run.json")
policy = train_ppo(config, score_fn=oracle)
log = read_jsonl(out / "ppo" / "log.jsonl")
preset = dataclasses.replace(PRESETS["full"])
metrics = evaluate_model(str(policy), world, out / "eval", preset.eval_limits, progress=False)
baseline = json.loads((seed_dir.parent / "metrics.json").read_text())[seed_dir.name.removeprefix("seed")][
    "baseline"
]
summary = {
    "seed_dir": str(seed_dir),
    "response_length_first": log[0]["response_length"],
    "response_length_last": log[-1]["response_length"],
    "kl_last": log[-1]["kl"],
    "oracle_score_first": log[0]["reward"],
    "oracle_score_last": log[-1]["reward"],
    **{
        f"{k}/{side}": value
        for k in (
            "mmhal/average_score",
            "mmhal/hallucination_rate",
            "pope_adversarial/f1",
            "chair/chair_i",
            "shr/shr",
        )
        for side, value in (("baseline", baseline[k]), ("oracle_ppo", metrics[k]))
    },
}
write_json(out / "summary.json", summary)
print(json.dumps(summary))
