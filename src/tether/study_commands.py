"""`tether study`: the end-to-end study. No heavy imports at module level."""


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
        help="quick: one seed, short stages (a smoke test, minutes); full: three seeds",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/study-<preset>)")
    parser.add_argument("--variants", nargs="+", help="only these variants (baseline is always included)")
    parser.add_argument("--seeds", nargs="+", type=int, help="override the preset's seeds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    import dataclasses

    from tether.study import PRESETS, run_study

    preset = PRESETS[args.preset]
    if args.variants:
        preset = dataclasses.replace(
            preset, variants=["baseline"] + [v for v in args.variants if v != "baseline"]
        )
    if args.seeds:
        preset = dataclasses.replace(preset, seeds=args.seeds)
    report = run_study(preset, args.out or f"runs/study-{args.preset}", progress=not args.no_progress)
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0
