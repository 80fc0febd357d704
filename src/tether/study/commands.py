"""`tether study`: the end-to-end study. No heavy imports at module level."""

from pathlib import Path

from tether.core.errors import TetherError
from tether.core.options import add_overrides_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "study",
        help="build the world, train the baseline, apply every method, evaluate, write the report",
        description="The main job: every method of tether in the synthetic world, evaluated with identical "
        "settings, with a report (report.md, report.html). Stages are cached: a rerun skips what is done.",
    )
    parser.add_argument(
        "--preset",
        choices=["quick", "full"],
        default="quick",
        help="quick: one seed, the shipped baseline and the methods that start from it (≤ 3 min on 2 "
        "cores); full: every method, three seeds",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/study-<preset>)")
    parser.add_argument("--variants", nargs="+", help="only these variants (baseline is always included)")
    parser.add_argument("--seeds", nargs="+", type=int, help="override the preset's seeds")
    add_overrides_option(
        parser,
        "override a preset setting (tether.study.StudyPreset; repeatable, dotted inside a mapping), e.g. "
        "--set noise_schedule=cosine --set world.n_train=800; preset.json records the result",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run the seeds in this many processes at once (CPU threads split between them), then write "
        "the report; on 2 cores the full preset's 3 seeds take 28 min with --jobs 3",
    )
    parser.add_argument(
        "--pool",
        nargs="+",
        metavar="RUN",
        help="train nothing: write one report over the seeds of these finished study folders (same preset "
        "apart from the seeds) into --out",
    )
    parser.add_argument(
        "--make-baseline",
        metavar="DIR",
        help="train and evaluate the preset's baseline (first seed; stages under --out), then write its "
        "final model and manifest.json (recipe, seed, world, code version, sha256 of each file, metrics) "
        "into DIR: how src/tether/baselines/quick, the quick preset's shipped baseline, is made. A DIR "
        "already holding this baseline is left as it is; one made with other settings is refused",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="with --make-baseline: replace what DIR holds (a baseline made with other settings, or other "
        "files; the same settings: remake it)",
    )
    parser.set_defaults(
        handler=_run, resume_hint="run the same command again to resume: finished stages are kept"
    )


def _run(args) -> int:
    import dataclasses

    from tether.study.pipeline import run_study
    from tether.study.preset import PRESETS, StudyPreset, check_preset

    if args.pool:
        from tether.study.pool import pool_studies

        if args.seeds or args.variants or args.overrides or not args.out:
            raise TetherError(
                "--pool takes the runs' own seeds, variants and settings; give it --out and no "
                "--seeds/--variants/--set"
            )
        report = pool_studies(args.pool, args.out)
        print(f"report: {report} (and {report.with_suffix('.html')})")
        return 0
    preset = PRESETS[args.preset]
    if args.overrides:  # first, so that --variants and --seeds (which each --jobs process gets) win
        from tether.core.config import apply_overrides, from_dict

        preset = from_dict(StudyPreset, apply_overrides(dataclasses.asdict(preset), args.overrides), "--set")
    if args.variants:
        preset = dataclasses.replace(
            preset, variants=["baseline"] + [v for v in args.variants if v != "baseline"]
        )
    if args.seeds:
        preset = dataclasses.replace(preset, seeds=args.seeds)
    check_preset(preset)  # before any process starts
    out = args.out or f"runs/study-{args.preset}"
    if args.overwrite and not args.make_baseline:
        raise TetherError(
            "--overwrite goes with --make-baseline (a study folder resumes by its fingerprints)"
        )
    if args.make_baseline:
        from tether.study.make_baseline import make_baseline

        manifest = make_baseline(preset, args.make_baseline, out, overwrite=args.overwrite)
        print(f"baseline: {manifest.parent} (manifest: {manifest})")
        return 0
    if args.jobs < 1:
        raise TetherError("--jobs must be >= 1")
    if args.jobs > 1 and len(preset.seeds) > 1:
        _run_seeds_in_parallel(args, preset.seeds, out)
    # every seed's stages are cached now (or run here with --jobs 1): this pass gathers them into the report
    report = run_study(preset, out, progress=not args.no_progress)
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0


def _run_seeds_in_parallel(args, seeds: list[int], out: str) -> None:
    """One `tether study --seeds S` process per seed, at most ``args.jobs`` at once, threads split evenly."""
    import os
    import subprocess
    import sys

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    base = [sys.executable, "-m", "tether", "study", "--preset", args.preset, "--out", out, "--no-progress"]
    if args.variants:
        base += ["--variants", *args.variants]
    for override in args.overrides:
        base += ["--set", override]
    Path(out).mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(seeds), [], []
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            log = Path(out) / f"seed{seed}.log"
            with open(log, "w") as stream:  # the child keeps its own handle
                command = base + ["--seeds", str(seed)]
                process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
            running.append((seed, process))
            print(f"seed {seed}: started (log: {log})", flush=True)
        seed, process = running.pop(0)
        if process.wait() != 0:
            failed.append(seed)
        print(f"seed {seed}: {'failed' if seed in failed else 'done'}", flush=True)
    if failed:
        raise TetherError(f"seeds {failed} failed; see {out}/seed<N>.log (a rerun resumes finished stages)")
