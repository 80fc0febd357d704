"""Wall time and peak memory of a `tether study` preset, stage by stage (the quick preset's budget: 3 min).

    python benchmarks/study_preset.py [--preset quick] [--out runs/bench-study] [--threads 2]

Runs the preset from scratch (the output folder is deleted first) and prints one line per stage with its
wall time and the process's peak RSS when it ended, the baseline recipe's own stages, and the total.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from tether.methods.run_record import peak_rss_mb
from tether.study.pipeline import run_study
from tether.study.preset import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    parser.add_argument("--out", default="runs/bench-study")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    run_study(PRESETS[args.preset], out, progress=False)
    total = time.perf_counter() - start
    for seed_dir in sorted(out.glob("seed*")):
        for run in sorted((seed_dir / "baseline").glob("*/run.json")):
            record = json.loads(run.read_text())
            print(
                f"{seed_dir.name} baseline/{run.parent.name:<14} {record['wall_seconds']:7.1f} s"
                f"   peak RSS {record['peak_rss_mb']:6.0f} MB"
            )
        timings = json.loads((seed_dir / "timings.json").read_text())
        for stage, timing in timings.items():
            if stage == "baseline":
                continue
            rss = timing.get("peak_rss_mb")
            print(
                f"{seed_dir.name} {stage:<23} {timing.get('seconds', 0):7.1f} s"
                + (f"   peak RSS {rss:6.0f} MB" if rss else "")
            )
    print(
        f"total {total:.1f} s ({total / 60:.1f} min), peak RSS {peak_rss_mb():.0f} MB, preset {args.preset}"
    )


if __name__ == "__main__":
    main()
