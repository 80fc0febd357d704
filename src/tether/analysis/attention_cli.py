"""`tether analyze attention`: visual vs text attention share per layer, correct vs hallucinated tokens.

``register_verb(verbs)`` adds the verb to the ``tether analyze`` sub-parsers (wired by ``analysis/commands.py``).
No heavy imports at module level.
"""

from tether.models.placement import add_model_load_options


def register_verb(verbs) -> None:
    description = (
        "Generate for each probe (image, prompt, ground-truth objects) and measure, per layer, the share of "
        "attention that generated tokens put on visual tokens vs text tokens, for correct vs hallucinated "
        "object words. Give two models (e.g. before/after NoiseBoost) to compare them in one plot."
    )
    parser = verbs.add_parser(
        "attention", help="attention share on visual vs text tokens", description=description
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH[=LABEL]",
        help="model folder, optionally with a plot label (repeat: before/after)",
    )
    parser.add_argument("--items", required=True, help='JSONL of {"image", "prompt", "objects": [...]}')
    parser.add_argument("--images", default=".", help="root that item image paths are relative to")
    parser.add_argument(
        "--word-map",
        help='JSON {"word": "object"} of object words and synonyms (default: every object named in --items)',
    )
    parser.add_argument("--out", required=True, help="folder for attention.json and attention.png")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, help="use only the first N items")
    # attention weights exist only under the eager kernel, which the analysis switches to itself
    add_model_load_options(parser, attention=False)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from tether.analysis.attention import (
        attention_share_report,
        load_attention_items,
        plot_attention_shares,
        word_map_lookup,
    )
    from tether.core.errors import TetherError
    from tether.core.io import read_json, write_json
    from tether.core.provenance import environment
    from tether.models import load
    from tether.models.decoding import DecodingSettings
    from tether.models.placement import ModelLoadSettings, placement_record

    items = load_attention_items(args.items, args.images)[: args.limit]
    if not items:
        raise TetherError(f"{args.items}: no items")
    if args.word_map:
        word_map = read_json(args.word_map)
        if not isinstance(word_map, dict) or not all(isinstance(v, str) for v in word_map.values()):
            raise TetherError(f"{args.word_map}: expected a JSON object of word -> object name")
    else:
        word_map = {o: o for item in items for o in item.objects}
    lookup = word_map_lookup(word_map)
    settings = DecodingSettings(max_new_tokens=args.max_new_tokens)
    reports = {}
    for spec in args.model:
        path, _, label = spec.partition("=")
        label = label or Path(path).name
        if label in reports:
            raise TetherError(f"two models labelled '{label}'; name them with PATH=LABEL")
        vlm = load(path, **ModelLoadSettings.from_args(args).load_options())
        reports[label] = {
            **attention_share_report(vlm, items, lookup, settings),
            "model_placement": placement_record(vlm.model),
        }
    out = Path(args.out)
    write_json(out / "attention.json", {"reports": reports, "environment": environment()})
    plot_attention_shares(reports, out / "attention.png")
    for label, report in reports.items():
        summary = []
        for group, g in report["groups"].items():
            mean = sum(g["visual"]) / len(g["visual"]) if g["visual"] else float("nan")
            summary.append(f"{group} {mean:.3f} (n={g['tokens']})")
        print(f"{label}: mean visual share over layers: " + ", ".join(summary))
    print(f"wrote {out / 'attention.json'} and {out / 'attention.png'}")
    return 0
