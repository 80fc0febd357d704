"""`tether eval <benchmark> score|run ...` and `tether report DIR...`.

``score`` scores existing answers with the official rules, without a model; ``run`` hands the items
to the model runner (``tether.eval.runner``). Heavy imports stay inside handlers.
"""

import json
from pathlib import Path

from tether.decoding.options import add_decoding_options, decoding_from_args
from tether.errors import TetherError
from tether.eval.run_options import FREE_MAX_NEW_TOKENS, PROMPT_SUFFIXES, YES_NO_MAX_NEW_TOKENS
from tether.models.placement import add_model_load_options

BENCHMARK_HELP = {
    "pope": "POPE yes/no object probing (random/popular/adversarial)",
    "chair": "CHAIR object hallucination in captions",
    "mme": "MME perception and cognition yes/no pairs",
    "mmhal": "MMHal-Bench, rated 0-6 by an LLM judge",
    "shr": "SHR sentence-level hallucination ratio, labelled by an LLM judge",
    "amber": "AMBER generative and discriminative halves",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score benchmark answers, run benchmarks")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name, help_text in BENCHMARK_HELP.items():
        bench = benchmarks.add_parser(name, help=help_text, description=help_text)
        verbs = bench.add_subparsers(dest="eval_verb", metavar="<verb>", required=True)
        score = verbs.add_parser(
            "score",
            help="score existing answers (no model needed)",
            description=f"{help_text}: score existing answers with the official parsing and metric rules.",
        )
        _DATA_OPTIONS[name](score, for_run=False)
        _add_common_score_options(score)
        score.set_defaults(handler=_score)
        run = verbs.add_parser(
            "run",
            help="generate answers with a local model or a served one (--endpoint), then score them",
            description=f"{help_text}: run a local model (--model) or a served one (--endpoint, "
            "--served-model) on the items (tether.eval.runner), write results.",
        )
        _DATA_OPTIONS[name](run, for_run=True)
        _add_run_options(run)
        run.set_defaults(handler=_run)

    report = subparsers.add_parser(
        "report",
        help="compare result folders side by side, with paired differences against a baseline",
        description="Print the metrics of several runs (folders with results.json) as one table, each run "
        "labelled by model name and a short fingerprint; every run other than the baseline also gets its "
        "difference from the baseline on the items both answered, with a paired bootstrap 95%% interval.",
    )
    report.add_argument("runs", nargs="+", metavar="DIR", help="run folders (or results.json files)")
    report.add_argument(
        "--baseline",
        help="the run the others are compared with: a folder, a position (1..N) or a label "
        "(default: the first)",
    )
    report.add_argument("--markdown", action="store_true", help="print a Markdown table")
    report.add_argument("--html", metavar="FILE", help="also write the table as an HTML page")
    report.add_argument("--no-intervals", action="store_true", help="omit the bootstrap 95%% intervals")
    report.add_argument(
        "--resamples", type=int, default=1000, help="paired bootstrap resamples (default 1000)"
    )
    report.add_argument("--seed", type=int, default=0, help="paired bootstrap seed (default 0)")
    report.set_defaults(handler=_report)


# ---- per-benchmark data options -------------------------------------------------------------------


def _pope_options(p, for_run):
    p.add_argument(
        "--questions",
        "--data",
        dest="data",
        required=True,
        nargs="+" if for_run else None,
        help="POPE question file (coco_pope_<split>[_v2023-08].jsonl, or LLaVA's llava_pope_test.jsonl)"
        + (
            "; give several split files to run all splits at once (scores per split and their means)"
            if for_run
            else ""
        ),
    )
    p.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="SPLIT=FILE",
        help="for LLaVA's combined file: the labelled split file of each category (repeatable)",
    )
    p.add_argument("--category", help="keep one split of a combined file (random, popular, adversarial)")
    if not for_run:
        p.add_argument("--answers", required=True, help="JSONL with question_id and text (or answer)")
        p.add_argument(
            "--match",
            choices=("order", "id"),
            default="order",
            help="pair answers with questions by line order within a split (official; default) or by question_id",
        )


def _chair_options(p, for_run):
    p.add_argument(
        "--gt", required=True, help='ground truth JSON {"objects": [...], "images": {id: [indices]}}'
    )
    p.add_argument("--synonyms", required=True, help="synonym list in CHAIR's synonyms.txt format")
    p.add_argument(
        "--image-pattern",
        default="{image_id}",
        help="image file name from an id, e.g. 'COCO_val2014_{image_id:012d}.jpg'",
    )
    if for_run:
        p.add_argument("--image-ids", help="file with one image id per line (default: every image in --gt)")
        p.add_argument(
            "--questions",
            help='JSONL of {"image_id", "image", "text"}: the images to caption, each with its file name and '
            "prompt, in place of --image-ids and --image-pattern (a world's bench/chair/questions.jsonl)",
        )
    else:
        p.add_argument(
            "--captions",
            "--answers",
            dest="answers",
            required=True,
            help="captions: JSONL/JSON list with image_id and caption (OPERA, Maxlinn formats)",
        )


def _mme_options(p, for_run):
    if for_run:
        p.add_argument(
            "--questions",
            "--data",
            dest="data",
            required=True,
            help="llava_mme.jsonl or the MME release folder",
        )
        return
    p.add_argument("--questions", "--data", dest="data", help="llava_mme.jsonl or the MME release folder")
    p.add_argument("--answers", help="JSONL with question_id, text (and prompt), LLaVA style")
    p.add_argument(
        "--eval-tool", help="folder of <subtask>.txt files: image, question, ground truth, prediction"
    )


def _mmhal_options(p, for_run):
    p.add_argument(
        "--template",
        "--data",
        dest="data",
        required=True,
        help="MMHal-Bench template (mmhal-bench_answer_template.json or a response file)",
    )
    if not for_run:
        p.add_argument(
            "--judge-output",
            required=True,
            help="judge replies in template order: JSON list of chat-completion objects or strings",
        )
        p.add_argument(
            "--responses", help="the judged model responses (template shape), kept in samples.jsonl"
        )


def _shr_options(p, for_run):
    p.add_argument(
        "--items",
        "--data",
        dest="data",
        required=True,
        help='SHR items JSONL: {"image_id", "image", "prompt", "facts": [...]}',
    )
    if not for_run:
        p.add_argument("--answers", required=True, help="descriptions: JSONL with image_id and text")
        p.add_argument("--judge-output", required=True, help="judge replies: JSONL with image_id and text")


def _amber_options(p, for_run):
    p.add_argument(
        "--queries", "--data", dest="data", required=True, help="AMBER query file (query_all.json ...)"
    )
    p.add_argument(
        "--annotations",
        required=True,
        help="AMBER annotations.json (relation.json, safe_words.txt beside it)",
    )
    if not for_run:
        p.add_argument("--answers", required=True, help="JSON list (or JSONL) with id and response")


_DATA_OPTIONS = {
    "pope": _pope_options,
    "chair": _chair_options,
    "mme": _mme_options,
    "mmhal": _mmhal_options,
    "shr": _shr_options,
    "amber": _amber_options,
}


def _add_common_score_options(p) -> None:
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with the metrics as top-level keys"
    )
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip and count bad answer lines instead of failing"
    )
    p.add_argument("--out", help="write results.json and samples.jsonl into this folder")
    p.add_argument("--model", help="model name recorded in results.json")
    p.add_argument("--data-version", help="data version recorded in results.json (e.g. POPE v2023-08)")
    _add_corrected_option(p)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")


def _add_corrected_option(p) -> None:
    p.add_argument(
        "--corrected",
        action="store_true",
        help="apply tether's documented corrections to the official scorer (docs/evaluation.md); "
        "recorded in results.json as scoring.rules",
    )


def _add_run_options(p) -> None:
    from tether.eval.endpoint import add_endpoint_options

    _add_corrected_option(p)
    p.add_argument("--model", help="local Hugging Face checkpoint folder (or --endpoint)")
    p.add_argument("--images", required=True, help="root folder of the benchmark images")
    p.add_argument("--out", required=True, help="output folder (answers, results.json, samples.jsonl)")
    p.add_argument(
        "--judge",
        choices=["llm", "world-rule"],
        default="llm",
        help="MMHal/SHR judge: an LLM through --judge-config, or the synthetic world's rule judge",
    )
    p.add_argument(
        "--judge-config", help="judge YAML (configs/judges/*.yaml: model, base_url, api_key_env...)"
    )
    p.add_argument("--world", help="world folder, for --judge world-rule")
    p.add_argument(
        "--mode",
        choices=("generate", "fast"),
        default="generate",
        help="generate text, or (yes/no benchmarks) compare the yes/no next-token probabilities with each "
        "image's prefix encoded once",
    )
    p.add_argument(
        "--backend",
        choices=("hf", "vllm"),
        default="hf",
        help="generation backend: Hugging Face transformers, or vLLM (pip install tether[vllm]; "
        "generate mode, no beam search)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"generation budget (default {FREE_MAX_NEW_TOKENS}; {YES_NO_MAX_NEW_TOKENS} when every item is a "
        "yes/no question; recorded)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--num-beams", type=int, default=1)
    add_decoding_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="generation batch (left-padded)")
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    p.add_argument("--data-version", help="data version recorded in results.json (e.g. POPE v2023-08)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip and count items whose image is missing or bad"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--limit", type=int, help="a random subset of N items, drawn with --seed (recorded)")
    p.add_argument(
        "--prompt-template",
        help="what the model is asked, with {question} standing for each item's question (recorded)",
    )
    p.add_argument(
        "--prompt-suffix",
        metavar="TEXT|PRESET",
        help="appended to each question on a new line; preset llava-short: "
        f"'{PROMPT_SUFFIXES['llava-short']}' (LLaVA's official POPE/MME suffix)",
    )
    add_model_load_options(p)
    p.set_defaults(resume_hint="run the same command again to resume: the answers in samples.jsonl are kept")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the answers in --out when they come from another model, data, mode, decoding or judge "
        "(without it such a rerun is refused; the same inputs resume)",
    )
    add_endpoint_options(p)


# ---- loading ---------------------------------------------------------------------------------------


def _load_items(args, benchmark):
    name = args.benchmark
    if name == "pope":
        labels = {}
        for entry in args.labels:
            split, sep, path = entry.partition("=")
            if not sep:
                raise TetherError(f"--labels expects SPLIT=FILE, got '{entry}'")
            labels[split] = path
        if isinstance(args.data, list):  # `run` takes several split files
            return benchmark.load_splits(args.data, labels=labels, category=args.category)
        return benchmark.load_items(args.data, labels=labels, category=args.category)
    if name == "chair":
        image_ids = None
        if getattr(args, "questions", None) and (args.image_ids or args.image_pattern != "{image_id}"):
            raise TetherError("--questions names the images: leave out --image-ids and --image-pattern")
        if getattr(args, "image_ids", None):
            from tether.data.io import read_text_lines

            image_ids = [x.strip() for x in read_text_lines(args.image_ids) if x.strip()]
        return benchmark.load_items(
            args.gt,
            synonyms=args.synonyms,
            image_ids=image_ids,
            image_pattern=args.image_pattern,
            questions=getattr(args, "questions", None),
        )
    if name == "amber":
        return benchmark.load_items(args.data, annotations=args.annotations)
    return benchmark.load_items(args.data)


def _score(args) -> int:
    from tether.data.io import SkipLog
    from tether.eval.benchmark import answers_by_id, read_answer_lines
    from tether.eval.registry import get_benchmark

    benchmark = get_benchmark(args.benchmark)
    benchmark.corrected = args.corrected
    skips = SkipLog()
    opts = {"skip_invalid": args.skip_invalid, "skips": skips}
    notes = {}
    judge = None
    data_file = getattr(args, "data", None)
    if args.benchmark == "pope":
        from tether.eval.pope import align_answers_by_line_order

        items = _load_items(args, benchmark)
        lines = read_answer_lines(args.answers, **opts, keep_skipped=args.match == "order")
        if args.match == "order":
            answers, mismatched = align_answers_by_line_order(items, lines, args.answers)
            notes["answers_with_other_question_id"] = mismatched
            # A skipped answer line is skipped with the question it stands against.
            notes["skipped_questions"] = len(items) - len(answers)
            items = [item for item in items if item.id in answers]
        else:
            answers = answers_by_id(lines, args.answers)
        score = benchmark.score(items, answers)
    elif args.benchmark == "mme":
        from tether.eval.mme import align_mme_answers, load_eval_tool

        if args.eval_tool:
            items, answers = load_eval_tool(args.eval_tool)
            data_file = args.eval_tool
        elif args.data and args.answers:
            items = _load_items(args, benchmark)
            answers = align_mme_answers(items, read_answer_lines(args.answers, **opts), args.answers)
        else:
            raise TetherError("give --eval-tool DIR, or --questions and --answers")
        score = benchmark.score(items, answers)
    elif args.benchmark == "chair":
        from tether.eval.chair import read_captions

        captions = read_captions(args.answers, **opts)
        items = benchmark.load_items(
            args.gt, synonyms=args.synonyms, image_ids=list(captions), image_pattern=args.image_pattern
        )
        data_file = args.gt
        score = benchmark.score(items, captions)
    elif args.benchmark == "mmhal":
        from tether.eval.mmhal import (
            read_judge_model,
            read_judge_replies,
            read_mmhal_responses,
            score_replies,
        )

        judge = {"name": read_judge_model(args.judge_output), "replies": str(args.judge_output)}

        items = _load_items(args, benchmark)
        responses = read_mmhal_responses(args.responses) if args.responses else None
        score = score_replies(items, read_judge_replies(args.judge_output), responses)
    elif args.benchmark == "shr":
        from tether.eval.shr import score_judgements

        items = _load_items(args, benchmark)
        answers = answers_by_id(read_answer_lines(args.answers, **opts), args.answers)
        replies = answers_by_id(read_answer_lines(args.judge_output), args.judge_output)
        score = score_judgements(items, answers, replies, corrected=benchmark.corrected)
        judge = {"name": None, "replies": str(args.judge_output)}
    else:
        items = _load_items(args, benchmark)
        score = benchmark.score(items, answers_by_id(read_answer_lines(args.answers, **opts), args.answers))
    score.notes.update(notes)
    score.scoring = benchmark.scoring()
    if skips.skipped:
        score.notes["skipped_lines"] = skips.skipped
        score.notes["skip_reasons"] = skips.reasons
    if args.out:
        from tether.eval.results import write_results

        write_results(
            args.out,
            args.benchmark,
            score,
            model=args.model,
            data_file=data_file,
            data_version=args.data_version,
            decoding={},
            judge=judge,
            seed=args.seed,
            n_resamples=args.resamples,
        )
    _print_score(score, as_json=args.json)
    return 0


def _print_score(score, *, as_json: bool) -> None:
    if as_json:
        output = dict(score.metrics)
        if score.notes.get("skipped_lines"):
            output["skipped_lines"] = score.notes["skipped_lines"]
        print(json.dumps(output))
        return
    width = max(len(name) for name in score.metrics)
    for name, value in score.metrics.items():
        shown = str(value) if isinstance(value, int) else f"{value:.4f}"
        print(f"{name:>{width}}: {shown}")
    for name, value in score.notes.items():
        if value and name != "skip_reasons":
            print(f"note: {name}: {value}")
    if score.notes.get("skip_reasons"):
        print(f"note: skipped because: {'; '.join(score.notes['skip_reasons'][:3])}")


def _run(args) -> int:
    from tether.eval.endpoint import endpoint_from_args
    from tether.eval.registry import get_benchmark
    from tether.eval.run_options import apply_prompt, default_max_new_tokens, limit_items, prompt_suffix_text
    from tether.eval.runner import run_benchmark
    from tether.models.placement import ModelLoadSettings

    endpoint = endpoint_from_args(args)
    if (endpoint is None) == (args.model is None):
        raise TetherError("give --model DIR, or --endpoint URL with --served-model NAME (not both)")
    if endpoint is not None and args.backend != "hf":
        raise TetherError("--backend picks a local generation backend; an --endpoint has its own")
    if not Path(args.images).is_dir():  # before anything slow: reading questions, loading the model
        raise TetherError(f"--images {args.images}: no such folder")
    benchmark = get_benchmark(args.benchmark)
    benchmark.corrected = args.corrected
    items = limit_items(_load_items(args, benchmark), args.limit, args.seed)
    suffixed_already = apply_prompt(items, args.prompt_template, args.prompt_suffix)
    max_new_tokens = args.max_new_tokens or default_max_new_tokens(items)
    run_settings = {
        "limit": args.limit,
        "prompt_template": args.prompt_template,
        "prompt_suffix": prompt_suffix_text(args.prompt_suffix),
        "questions_already_suffixed": suffixed_already if args.prompt_suffix else None,
        "max_new_tokens_default": args.max_new_tokens is None,
        "model_load": ModelLoadSettings.from_args(
            args, "auto" if args.backend == "vllm" else "float32"
        ).load_options(),
    }
    decoding = {
        "max_new_tokens": max_new_tokens,
        "temperature": args.temperature if args.temperature > 0 else 1.0,
        "num_beams": args.num_beams,
        "do_sample": args.temperature > 0,
        "batch_size": args.batch_size,
        "seed": args.seed,
        **decoding_from_args(args),
    }
    score = run_benchmark(
        benchmark,
        items,
        judge=_make_judge(args) if benchmark.needs_judge else None,
        model_path=args.model,
        images_root=args.images,
        out_dir=args.out,
        decoding=decoding,
        mode=args.mode,
        backend=args.backend,
        data_file=getattr(args, "data", None),
        data_version=args.data_version,
        seed=args.seed,
        skip_invalid=args.skip_invalid,
        progress=not args.no_progress,
        load_settings=ModelLoadSettings(**run_settings["model_load"]),
        extra=run_settings,
        overwrite=args.overwrite,
        endpoint=endpoint,
        concurrency=args.concurrency,
    )
    for name, value in score.metrics.items():
        print(f"{name:>16}: {value:.4f}" if isinstance(value, float) else f"{name:>16}: {value}")
    if score.notes.get("skipped_items"):
        reasons = "; ".join(score.notes["skip_reasons"][:3])
        print(f"note: {score.notes['skipped_items']} items skipped: {reasons}")
    print(f"results written to {Path(args.out) / 'results.json'}")
    return 0


def _make_judge(args):
    """The judge of a run: the world's rule judge, or an LLM judge over the OpenAI-compatible client."""
    if args.judge == "world-rule":
        if not args.world:
            raise TetherError("--judge world-rule needs --world DIR (a built world)")
        from tether.world.judge import WorldRuleJudge

        return WorldRuleJudge(args.world)
    if not args.judge_config:
        raise TetherError(
            f"{args.benchmark} needs a judge: --judge-config FILE (see configs/judges/) or "
            "--judge world-rule --world DIR"
        )
    from tether.config import load_config
    from tether.eval.judge_protocol import LLMJudge
    from tether.eval.judges import JudgeConfig, make_client

    return LLMJudge(make_client(load_config(JudgeConfig, args.judge_config)))


def _report(args) -> int:
    from tether.eval.compare import compare_runs, format_comparison, write_html

    comparison = compare_runs(
        args.runs,
        baseline=args.baseline,
        show_intervals=not args.no_intervals,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    print(format_comparison(comparison, markdown=args.markdown))
    if args.html:
        print(f"wrote {write_html(comparison, args.html)}")
    return 0


__all__ = ["register"]
