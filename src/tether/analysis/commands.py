"""`tether analyze <verb>`: analyses of model representations. No heavy imports at module level."""

import argparse

from tether.models.placement import add_model_load_options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="analyse models: modality gap (HACL), attention share on visual tokens (NoiseBoost)"
    )
    verbs = parser.add_subparsers(dest="analyze_verb", metavar="<analysis>", required=True)
    gap = verbs.add_parser(
        "gap",
        help="modality gap between image, caption and hallucinated-caption representations",
        description=(
            "For images with a true and a hallucinated caption (a `tether data negatives` file), take the "
            "last-token representations of the visual tokens alone, the caption alone and the hallucinated "
            "caption alone; report the image/text centroid distance, the cosine of matched pairs and the "
            "accuracy of a linear probe separating true from hallucinated captions; plot a 2-D projection. "
            "Give --model twice (before and after HACL) for one side-by-side figure. Writes gap.json and gap.png."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    gap.add_argument("--model", action="append", required=True, help="checkpoint folder (repeatable)")
    gap.add_argument("--label", action="append", help="panel label per --model (default: folder names)")
    gap.add_argument("--negatives", required=True, help="negatives JSONL (image, caption, negative)")
    gap.add_argument("--images", default=".", help="root that image paths are relative to")
    gap.add_argument("--out", required=True, help="output folder for gap.json and gap.png")
    gap.add_argument("--limit", type=int, help="use only the first N pairs")
    gap.add_argument("--projection", choices=["pca", "umap"], default="pca")
    gap.add_argument("--batch-size", type=int, default=16)
    gap.add_argument("--seed", type=int, default=0, help="probe fold assignment")
    add_model_load_options(gap)
    gap.set_defaults(handler=_gap)

    from tether.analysis.attention_cli import register_verb

    register_verb(verbs)


def _gap(args) -> int:
    from pathlib import Path

    from tether.analysis.gap import analyze_gap
    from tether.core.errors import TetherError
    from tether.models.placement import ModelLoadSettings

    labels = args.label or [Path(m).name for m in args.model]
    if len(labels) != len(args.model):
        raise TetherError(f"{len(labels)} --label for {len(args.model)} --model")
    report = analyze_gap(
        list(zip(labels, args.model)),
        args.negatives,
        args.images,
        args.out,
        limit=args.limit,
        projection=args.projection,
        batch_size=args.batch_size,
        seed=args.seed,
        load_settings=ModelLoadSettings.from_args(args),
    )
    print(f"{report['pairs']} pairs; written {args.out}/gap.json and gap.png")
    for m in report["models"]:
        print(
            f"  {m['label']}: centroid distance {m['centroid_distance']:.4f}, matched cosine "
            f"{m['matched_cosine']:.4f}, negative cosine {m['negative_cosine']:.4f}, "
            f"probe accuracy {m['probe_accuracy']:.3f}"
        )
    return 0
