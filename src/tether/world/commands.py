"""`tether world ...`: build a synthetic world folder, train the baseline recipe on it, show one of its scenes."""

from tether.core.options import add_overrides_option, add_set_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "world",
        help="build the synthetic grounded world (images, scene graphs, texts, benchmark files)",
        description="The synthetic grounded world: shapes on a canvas with exact ground truth, a "
        "configurable co-occurrence bias, texts and exports in the real benchmark formats.",
    )
    verbs = parser.add_subparsers(dest="world_verb", metavar="<verb>", required=True)

    build = verbs.add_parser(
        "build",
        help="write images, scene graphs, texts and all benchmark exports into a folder",
        description="Build a world into --out (layout: docs/world.md). Same config and seed -> the same "
        "files, byte for byte (except build_info.json, which records versions and time).",
    )
    add_set_option(build)
    build.add_argument("--out", required=True, help="output folder (created; must be empty or a world)")
    build.add_argument("--overwrite", action="store_true", help="replace the world already in --out")
    build.set_defaults(handler=_build)

    baseline = verbs.add_parser(
        "baseline",
        help="train the baseline recipe on a world: a tiny LLaVA that hallucinates along the world's bias",
        description="LLaVA's training recipe in miniature (docs/baseline.md): a tiny model over the world's "
        "vocabulary, then vision-tower pretraining, alignment on captions, existence questions and "
        "instruction tuning, each an ordinary tether training run. Stages already done with the same "
        "settings and inputs are skipped on a rerun. The final model is OUT/sft/model.",
    )
    baseline.add_argument("dir", help="a world folder made by `tether world build`")
    baseline.add_argument("--out", required=True, help="output folder (one subfolder per stage)")
    baseline.add_argument(
        "--config", help="YAML of recipe settings (BaselineRecipe: seed, model, lm, vision, ...)"
    )
    add_overrides_option(baseline, "override a recipe setting, e.g. --set qa.steps=500 (repeatable)")
    baseline.add_argument("--no-progress", action="store_true", help="no progress bars")
    baseline.set_defaults(handler=_baseline)

    show = verbs.add_parser("show", help="print one scene graph and the texts written from it")
    show.add_argument("dir", help="a world folder made by `tether world build`")
    show.add_argument("--index", type=int, default=0, help="scene index within the split (default 0)")
    show.add_argument(
        "--split",
        default="train",
        choices=["train", "val", "test", "unlabeled", "pref"],
        help="split (default train)",
    )
    show.set_defaults(handler=_show)


def _build(args) -> int:
    from tether.world.build import build_world
    from tether.world.config import SPLITS, load_world_config

    config = load_world_config(args.config, args.overrides)
    counts = build_world(config, args.out, overwrite=args.overwrite)
    seconds = counts.pop("build_seconds")
    scenes = sum(counts.get(f"{split}_images", 0) for split in SPLITS)
    print(f"built {scenes} scenes into {args.out} in {seconds:.1f} s")
    for name, value in counts.items():
        print(f"  {name:>24}: {value}")
    return 0


def _baseline(args) -> int:
    from tether.core.config import load_config
    from tether.study.recipe import BaselineRecipe, train_baseline
    from tether.world.show import require_world

    recipe = load_config(BaselineRecipe, args.config, args.overrides)
    if args.no_progress:
        recipe.progress_bar = False
    model = train_baseline(require_world(args.dir), args.out, recipe)
    print(f"baseline model written to {model}")
    return 0


def _show(args) -> int:
    from tether.world.show import show_scene

    print(show_scene(args.dir, args.split, args.index))
    return 0
