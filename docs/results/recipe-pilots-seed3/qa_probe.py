"""Accuracy of a world model's short answers per QA kind (greedy), on the first N questions of a split."""

import collections
import json
import sys
from pathlib import Path

from PIL import Image

from tether.models import load
from tether.models.decoding import DecodingSettings

model, world, split, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rows = [json.loads(line) for line in open(world / "text" / f"{split}_qa.jsonl")]
vlm = load(model)
out = {}
for kind in ["existence", "attribute", "position", "count"]:
    items = [r for r in rows if r["qa_type"] == kind][:n]
    ok = 0
    sub = collections.Counter()
    for i in range(0, len(items), 32):
        part = items[i : i + 32]
        ims = [Image.open(world / "images" / r["image"]).convert("RGB") for r in part]
        answers = vlm.generate(ims, [r["question"] for r in part], DecodingSettings(max_new_tokens=6))
        for r, a in zip(part, answers):
            good = a.strip().lower().rstrip(".") == r["answer"].lower()
            ok += good
            key = r["question"].split()[1] if kind == "attribute" else kind
            sub[key, good] += 1
    out[kind] = round(ok / len(items), 3)
    if kind == "attribute":
        out["attribute_by_word"] = {
            k: round(sub[k, True] / max(1, sub[k, True] + sub[k, False]), 3) for k in ("color", "size")
        }
print(json.dumps(out))
