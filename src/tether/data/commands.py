"""`tether data <verb>`: building training data. No heavy imports at module level."""

import argparse

from tether.errors import TetherError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build training data (hallucinated negatives, ...)")
    verbs = parser.add_subparsers(dest="data_verb", metavar="<verb>", required=True)
    negatives = verbs.add_parser(
        "negatives",
        help="rewrite ground-truth captions into hallucinated negatives (HACL)",
        description=(
            "Rewrite each caption into a mirrored caption of the same length and style that adds "
            "hallucinations (object, attribute, count, position). Backend 'rule' needs no LLM; backend "
            "'llm' asks a chat model (an OpenAI-compatible judge recipe). Output: JSONL, one line per "
            "caption with image, caption, negative, kinds, changes, rewriter."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    negatives.add_argument(
        "captions", help="JSONL/JSON of captions: SFT records, or {image|image_id, caption}"
    )
    negatives.add_argument("--out", required=True, help="negatives JSONL to write")
    negatives.add_argument("--backend", choices=["rule", "llm"], default="rule")
    negatives.add_argument(
        "--kinds",
        default="object,attribute,count,position",
        help="comma-separated kinds that may be injected",
    )
    negatives.add_argument("--max-kinds", type=int, default=2, help="at most this many kinds per caption")
    negatives.add_argument("--seed", type=int, default=0)
    negatives.add_argument(
        "--synonyms", help="rule backend: CHAIR-style synonyms.txt (first item per line is canonical)"
    )
    negatives.add_argument(
        "--co-occurrence", help="rule backend: JSON object -> objects seen with it (POPE's)"
    )
    negatives.add_argument(
        "--objects",
        help="JSON mapping image -> objects truly present (else each record's 'objects', else mentions)",
    )
    negatives.add_argument("--judge", help="llm backend: judge recipe YAML (configs/judges/*.yaml)")
    negatives.add_argument("--skip-invalid", action="store_true", help="skip malformed input lines")
    negatives.set_defaults(handler=_negatives)


def _negatives(args) -> int:
    from pathlib import Path

    from tether.data.io import SkipLog, read_json
    from tether.data.negatives import coco_vocabulary, load_caption_records, make_negatives, write_negatives

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    skips = SkipLog()
    records = load_caption_records(args.captions, skip_invalid=args.skip_invalid, skips=skips)
    if args.objects:
        present = read_json(args.objects)
        if not isinstance(present, dict):
            raise TetherError(f"{args.objects}: expected a JSON object mapping image -> list of objects")
        for r in records:
            if r.objects is None and r.image in present:
                r.objects = list(present[r.image])
    if args.backend == "rule":
        from tether.data.negatives import RuleRewriter

        if not args.synonyms:
            raise TetherError("the rule backend needs --synonyms (e.g. shared/data/chair/synonyms.txt)")
        rewriter = RuleRewriter(coco_vocabulary(args.synonyms, args.co_occurrence), kinds, args.max_kinds)
    else:
        from tether.config import load_config
        from tether.data.negatives_llm import LLMRewriter
        from tether.eval.judges import JudgeConfig, make_client

        if not args.judge:
            raise TetherError("the llm backend needs --judge RECIPE.yaml")
        rewriter = LLMRewriter(make_client(load_config(JudgeConfig, args.judge, [])), kinds, args.max_kinds)
    rewrite_skips = SkipLog()
    rows = make_negatives(records, rewriter, seed=args.seed, skips=rewrite_skips)
    write_negatives(Path(args.out), rows)
    print(
        f"{len(rows)} negatives from {len(records)} captions written to {args.out}; "
        f"{rewrite_skips.skipped} not rewritten, {skips.skipped} input lines skipped"
    )
    for reason in rewrite_skips.reasons[:5]:
        print(f"  skipped: {reason}")
    return 0
