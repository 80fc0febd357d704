"""`tether data <verb>`: building training data. No heavy imports at module level."""

import argparse

from tether.core.errors import TetherError
from tether.decoding.options import add_decoding_options, decoding_from_args
from tether.eval.endpoint import add_endpoint_options
from tether.models.placement import add_model_load_options


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
    negatives.add_argument("--streaming", action="store_true", help="a Hugging Face dataset input is read row by row off its files, never loaded whole")
    negatives.add_argument(
        "--concurrency", type=int, default=1, help="llm backend: requests in flight at once"
    )
    _add_overwrite_option(negatives)
    negatives.set_defaults(handler=_negatives)
    _register_pairs(verbs)
    _register_answer_pairs(verbs)


def _add_overwrite_option(parser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an --out made from other inputs or settings (recorded in OUT.run.json); without it "
        "such a rerun is refused, and the same inputs resume or do nothing",
    )


def _claim(out, inputs: dict, overwrite: bool, produced=()):
    """Claim ``out`` (a file) for this run: its inputs are recorded in ``OUT.run.json`` beside it. A device
    or a pipe (``--out /dev/stdout``) keeps no record and is simply written."""
    from pathlib import Path

    from tether.core.fingerprints import claim_output
    from tether.core.io import is_stream

    out = Path(out)
    if is_stream(out):
        return None
    return claim_output(
        out.with_suffix(".run.json"), inputs, produced=[out, *produced], overwrite=overwrite, output=out
    )


def _register_answer_pairs(verbs) -> None:
    parser = verbs.add_parser(
        "answer-pairs",
        help="build HA-DPO preference pairs from a model's wrong answers to yes/no questions",
        description=(
            "The model answers each yes/no question (greedy); each wrong answer becomes a pair (true "
            "answer, the other answer, as bare Yes/No), HA-DPO's pope_data; --select all pairs every question. "
            "With balancing (default), pairs from the short side are added (correctly answered questions; "
            "with --select all, its questions again) until as many pairs prefer Yes as prefer No: wrong "
            "answers alone nearly all prefer No and teach DPO to say no, not to look. Questions: POPE's "
            "fields (image, text, label) or tether's (image, question, answer). Writes OUT and a .run.json "
            "beside it (model, settings, counts, library versions)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "model", nargs="?", help="checkpoint folder of the model whose answers are judged (or --endpoint)"
    )
    parser.add_argument("--questions", required=True, help="JSONL/JSON of yes/no questions with answers")
    parser.add_argument("--images", required=True, help="folder the questions' image paths are under")
    parser.add_argument("--out", required=True, help="preference pairs JSONL to write")
    parser.add_argument(
        "--select",
        choices=["wrong", "all"],
        default="wrong",
        help="questions to pair: the wrongly answered ones (HA-DPO's, default) or all",
    )
    parser.add_argument(
        "--no-balance",
        action="store_true",
        help="no balancing pairs (by default pairs are added until as many prefer Yes as No)",
    )
    parser.add_argument(
        "--mode",
        choices=["fast", "generate"],
        default="fast",
        help="fast: the first answer token's yes/no logits; generate: decode and parse as POPE does",
    )
    parser.add_argument("--seed", type=int, default=0, help="which correct answers balancing draws")
    parser.add_argument("--skip-invalid", action="store_true", help="skip malformed question lines")
    parser.add_argument("--streaming", action="store_true", help="a Hugging Face dataset input is read row by row off its files, never loaded whole")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_load_options(parser)
    _add_overwrite_option(parser)
    add_endpoint_options(parser, judges=False)
    parser.set_defaults(handler=_answer_pairs)


def _answer_pairs(args) -> int:
    from dataclasses import asdict

    from tether.core.fingerprints import file_identity, model_identity
    from tether.core.io import SkipLog
    from tether.core.provenance import environment
    from tether.data.answer_pairs import AnswerPairSettings, build_answer_pairs, load_yes_no_questions
    from tether.eval.run_identity import endpoint_identity
    from tether.models import load
    from tether.models.placement import ModelLoadSettings, placement_record

    model = _model_or_endpoint(args)
    settings = AnswerPairSettings(
        select=args.select, balance=not args.no_balance, seed=args.seed, mode=args.mode
    )
    skips = SkipLog()
    questions = load_yes_no_questions(
        args.questions, args.skip_invalid, skips, images=args.images, streaming=args.streaming
    )
    if not questions:
        raise TetherError(f"{args.questions}: no questions")
    load_settings = ModelLoadSettings.from_args(args)
    inputs = {
        "model": model_identity(args.model) if model is None else endpoint_identity(model),
        "model_load": asdict(load_settings),
        "questions": file_identity(args.questions),
        "images": str(args.images),
        "skip_invalid": args.skip_invalid,
        "settings": asdict(settings),
    }
    claim = _claim(args.out, inputs, args.overwrite)
    if claim is not None and claim.finished:
        print(f"{args.out} was written from these inputs already (see {claim.marker}); nothing to do")
        return 0
    if model is None:
        model = load(args.model, **load_settings.load_options())
    counts = build_answer_pairs(
        model, questions, args.images, args.out, settings, progress=not args.no_progress
    )
    run = {
        "model": str(args.model or model.path),
        "model_placement": placement_record(model.model) if hasattr(model, "model") else None,
        "endpoint": model.record(settings.mode) if hasattr(model, "record") else None,
        "questions": str(args.questions),
        **({"chat_template": args.chat_template} if args.chat_template else {}),
        "settings": asdict(settings),
        "counts": counts,
        "skipped_input": skips.reasons,
        "environment": environment(),
    }
    if claim is not None:
        claim.mark_finished(**run)
    print(
        f"{counts['questions']} questions, {counts['wrong']} answered wrong ({counts['wrong_chosen_yes']} "
        f"of them should be yes), {counts['balancing']} balancing: {counts['pairs']} pairs written to "
        f"{args.out}"
    )
    if skips.skipped:
        print(f"  {skips.summary('input lines')}")
    return 0


def _register_pairs(verbs) -> None:
    pairs = verbs.add_parser(
        "pairs",
        help="build HA-DPO preference pairs from a model's own descriptions",
        description=(
            "HA-DPO's pair pipeline: sample the model's detailed descriptions of each image, label every "
            "sentence with a judge (the world's rule judge, or an LLM given each image's facts), correct the "
            "hallucinated sentences (fix or drop), and write (chosen = corrected, rejected = original) "
            "preference records with the judge's verdicts as provenance. --variants N rewrites each pair "
            "into N pairs in one consistent style with the LLM of --judge-config. Output is appended per "
            "image: a rerun with the same settings resumes. Writes OUT.run.json beside it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pairs.add_argument(
        "model",
        nargs="?",
        help="checkpoint folder of the model whose descriptions are judged (or --endpoint)",
    )
    pairs.add_argument("--out", required=True, help="preference pairs JSONL to write (appended per image)")
    pairs.add_argument("--judge", choices=["world", "llm"], required=True, help="sentence judge")
    pairs.add_argument(
        "--image-list",
        help="JSONL/JSON of {image_id, image[, facts][, captions][, objects]}; "
        "optional with --judge world (default: every scene of --split)",
    )
    pairs.add_argument(
        "--images", help="folder the image paths are under (default with --judge world: WORLD/images)"
    )
    pairs.add_argument("--world", help="--judge world: the world folder (`tether world build`)")
    pairs.add_argument("--split", default="train", help="--judge world: which split's scenes")
    pairs.add_argument(
        "--judge-config", help="LLM recipe YAML (configs/judges/*.yaml) for --judge llm and --variants"
    )
    pairs.add_argument("--samples-per-image", type=int, default=4, help="descriptions sampled per image")
    pairs.add_argument("--temperature", type=float, default=1.0)
    pairs.add_argument("--top-p", type=float, default=0.95)
    pairs.add_argument("--max-new-tokens", type=int, default=64)
    pairs.add_argument("--max-pairs-per-image", type=int, default=2, help="judged pairs kept per image")
    pairs.add_argument(
        "--variants", type=int, default=0, help="style-consistent LLM rewrites per pair (0: no rewriting)"
    )
    pairs.add_argument("--prompt", default="Describe this image in detail.", help="the description prompt")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument(
        "--backend",
        choices=["hf", "vllm"],
        default="hf",
        help="how descriptions are sampled: transformers, or vLLM (pip install tether[vllm])",
    )
    pairs.add_argument("--limit", type=int, help="only the first N images of the list")
    pairs.add_argument(
        "--lenient",
        action="store_true",
        help="an unusable LLM judge reply counts as 'cannot judge' for each sentence, an unusable "
        "correction drops the hallucinated sentences (default: stop with an error naming the image)",
    )
    pairs.add_argument("--skip-invalid", action="store_true", help="skip malformed image list lines")
    pairs.add_argument("--streaming", action="store_true", help="a Hugging Face dataset input is read row by row off its files, never loaded whole")
    pairs.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_decoding_options(pairs)
    add_model_load_options(pairs)
    _add_overwrite_option(pairs)
    add_endpoint_options(pairs)
    pairs.set_defaults(
        handler=_pairs, resume_hint="run the same command again to resume: finished images are kept"
    )


def _pairs(args) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from tether.core.fingerprints import file_identity, model_identity
    from tether.core.io import SkipLog, is_stream
    from tether.core.provenance import environment
    from tether.data.pairs import PairSettings, build_pairs, load_pair_images
    from tether.eval.run_identity import endpoint_identity
    from tether.models.placement import ModelLoadSettings

    settings = PairSettings(
        prompt=args.prompt,
        samples_per_image=args.samples_per_image,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        max_pairs_per_image=args.max_pairs_per_image,
        seed=args.seed,
        variants=args.variants,
        backend=args.backend,
        **decoding_from_args(args),
    )
    if min(settings.samples_per_image, settings.max_new_tokens, settings.max_pairs_per_image) < 1:
        raise TetherError("--samples-per-image, --max-new-tokens and --max-pairs-per-image must be >= 1")
    if settings.variants < 0 or (args.limit is not None and args.limit < 0):
        raise TetherError("--variants and --limit must be >= 0")
    if args.judge == "world" and not args.world:
        raise TetherError("--judge world needs --world WORLD_DIR")
    if args.judge == "llm" and not args.image_list:
        raise TetherError("--judge llm needs --image-list with facts or captions for each image")
    if args.judge == "llm" and not args.images:
        raise TetherError("--judge llm needs --images DIR (the folder the image paths are under)")
    endpoint = _model_or_endpoint(args)
    if endpoint is not None and args.backend != "hf":
        raise TetherError("--backend picks a local generation backend; an --endpoint has its own")
    if settings.strategy != "greedy" and (endpoint is not None or args.backend != "hf"):
        raise TetherError(f"--decoding {settings.strategy} runs on a local model: --backend hf, no --endpoint")
    client = _pairs_client(args)
    skips = SkipLog()
    images_root = args.images or (Path(args.world) / "images" if args.world else None)
    images = (
        load_pair_images(
            args.image_list, args.skip_invalid, skips, images=images_root, streaming=args.streaming
        )
        if args.image_list
        else None
    )

    if args.judge == "world":
        from tether.world.pairs import WorldPairJudge

        judge = WorldPairJudge(args.world, args.split, seed=args.seed)
        if images is None:
            from tether.data.pairs import PairImage

            images = [PairImage(s.image_id, s.image, []) for s in judge.scenes.values()]
        unknown = [i.image_id for i in images if i.image_id not in judge.scenes]
        if unknown:
            raise TetherError(
                f"{len(unknown)} images are not '{args.split}' scenes of {args.world}: {unknown[:3]}"
            )
        judge_record = {"name": judge.name}
    else:
        from tether.data.pairs_llm import LLMPairJudge

        judge = LLMPairJudge(client, {i.image_id: i.facts for i in images}, lenient=args.lenient)
        judge_record = {"name": judge.name, "client": client.settings(), "lenient": args.lenient}
    images = images[: args.limit] if args.limit is not None else images
    if args.judge == "llm":
        bare = [i.image_id for i in images if not i.facts]
        if bare:
            raise TetherError(f"{len(bare)} images have no facts or captions for the LLM judge: {bare[:3]}")

    rewriter = None
    if settings.variants:
        from tether.data.pairs_llm import LLMStyleRewriter

        rewriter = LLMStyleRewriter(client, {i.image_id: i.facts for i in images})
        judge_record["rewriter"] = client.settings()

    out = Path(args.out)
    if is_stream(out):
        raise TetherError(f"{out}: pairs are appended per image and resumed, so --out must be a file")
    load_settings = ModelLoadSettings.from_args(args, "auto" if settings.backend == "vllm" else "float32")
    run = {
        "model": str(args.model) if endpoint is None else f"{endpoint.served_model} at {endpoint.client.host}",
        "judge": judge_record,
        "settings": asdict(settings),
        "model_load": asdict(load_settings),
    }
    inputs = {
        **run,
        "model": model_identity(args.model) if endpoint is None else endpoint_identity(endpoint),
        "images": [[i.image_id, i.image] for i in images],
        "images_root": str(images_root),
        "image_list": file_identity(args.image_list),
        "world": [args.world, args.split] if args.judge == "world" else None,
    }
    claim = _claim(out, inputs, args.overwrite, produced=[out.with_suffix(".progress.jsonl")])
    run["n_images"] = len(images)

    counts = build_pairs(
        endpoint or args.model,  # a checkpoint is loaded with settings.backend once an image is left to do
        [(i.image_id, i.image) for i in images],
        images_root,
        out,
        judge,
        judge.correct,
        settings,
        judge_name=judge.name,
        progress=not args.no_progress,
        rewriter=rewriter,
        load_settings=load_settings,
        concurrency=args.concurrency,
    )
    invalid = getattr(judge, "invalid_replies", [])
    record = {**run, "counts": counts, "invalid_replies": invalid, "skipped_input": skips.reasons}
    if client is not None:
        record["judge_usage"] = client.usage.to_dict()
    if endpoint is not None:
        record["endpoint"] = endpoint.record()
    claim.mark_finished(**record, environment=environment())
    print(
        f"{counts['images']} images ({counts['resumed']} resumed), {counts['descriptions']} descriptions, "
        f"{counts['hallucinated']} hallucinated, {counts['pairs']} pairs written to {out}"
    )
    if invalid or skips.skipped:
        print(f"  {len(invalid)} unusable judge replies (lenient); {skips.summary('input lines')}")
    if client is not None:
        print(f"  {client.usage_report()}")
    return 0


def _model_or_endpoint(args):
    """The served model of --endpoint/--served-model, or None for the local checkpoint MODEL (one of the two)."""
    from tether.eval.endpoint import endpoint_from_args

    endpoint = endpoint_from_args(args)
    if (endpoint is None) == (args.model is None):
        raise TetherError(
            "give a checkpoint folder MODEL, or --endpoint URL with --served-model NAME (not both)"
        )
    return endpoint


def _pairs_client(args):
    """The chat client of --judge-config, when the judge or the rewriter needs one."""
    if args.judge != "llm" and not args.variants:
        return None
    if not args.judge_config:
        raise TetherError("--judge llm and --variants need --judge-config RECIPE.yaml (configs/judges/)")
    from tether.core.config import load_config
    from tether.eval.judges import JudgeConfig, make_client

    return make_client(load_config(JudgeConfig, args.judge_config, []))


def _negatives(args) -> int:
    from pathlib import Path

    from tether.core.fingerprints import file_identity
    from tether.core.io import SkipLog, read_json
    from tether.core.provenance import environment
    from tether.data.negatives import coco_vocabulary, load_caption_records, make_negatives, write_negatives

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    inputs = {
        "captions": file_identity(args.captions),
        "backend": args.backend,
        "kinds": kinds,
        "max_kinds": args.max_kinds,
        "seed": args.seed,
        "skip_invalid": args.skip_invalid,
        **{
            name: file_identity(getattr(args, name))
            for name in ("synonyms", "co_occurrence", "objects", "judge")
        },
    }
    skips = SkipLog()
    records = load_caption_records(
        args.captions, skip_invalid=args.skip_invalid, skips=skips, streaming=args.streaming
    )
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
        from tether.core.config import load_config
        from tether.data.negatives_llm import LLMRewriter
        from tether.eval.judges import JudgeConfig, make_client

        if not args.judge:
            raise TetherError("the llm backend needs --judge RECIPE.yaml")
        rewriter = LLMRewriter(make_client(load_config(JudgeConfig, args.judge, [])), kinds, args.max_kinds)
    claim = _claim(args.out, inputs, args.overwrite)
    if claim is not None and claim.finished:
        print(f"{args.out} was written from these inputs already (see {claim.marker}); nothing to do")
        return 0
    rewrite_skips = SkipLog()
    rows = make_negatives(
        records, rewriter, seed=args.seed, skips=rewrite_skips, concurrency=args.concurrency
    )
    write_negatives(Path(args.out), rows)
    if claim is not None:
        counts = {"negatives": len(rows), "captions": len(records), "not_rewritten": rewrite_skips.skipped}
        claim.mark_finished(counts=counts, skipped_input=skips.reasons, environment=environment())
    print(
        f"{len(rows)} negatives from {len(records)} captions written to {args.out}; "
        f"{rewrite_skips.skipped} not rewritten, {skips.skipped} input lines skipped"
    )
    for reason in rewrite_skips.reasons[:5]:
        print(f"  skipped: {reason}")
    if skips.skipped:
        print(f"  {skips.summary('input lines')}")
    return 0
