"""`tether eval <benchmark> score|run ...` and `tether report DIR...`.

Generic over the registry (``tether.eval.registry``): each benchmark adds its own options
(``Benchmark.add_options``), loads its items (``items_from_args``) and scores its files (``score_files``);
this module adds the options every benchmark shares and hands the items to the model runner
(``tether.eval.runner``). ``score`` scores existing answers with the official rules, without a model.
Heavy imports stay inside handlers.
"""

import json
from pathlib import Path

from tether.core.errors import TetherError
from tether.decoding.options import add_decoding_options, decoding_from_args
from tether.eval.registry import BENCHMARKS, get_benchmark
from tether.eval.run_options import FREE_MAX_NEW_TOKENS, PROMPT_SUFFIXES, YES_NO_MAX_NEW_TOKENS
from tether.models.placement import add_model_load_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score benchmark answers, run benchmarks")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name in BENCHMARKS:
        benchmark = get_benchmark(name)
        help_text = benchmark.description
        bench = benchmarks.add_parser(name, help=help_text, description=help_text)
        verbs = bench.add_subparsers(dest="eval_verb", metavar="<verb>", required=True)
        score = verbs.add_parser(
            "score",
            help="score existing answers (no model needed)",
            description=f"{help_text}: score existing answers with the official parsing and metric rules.",
        )
        benchmark.add_options(score, run=False)
        _add_common_score_options(score)
        score.set_defaults(handler=_score)
        run = verbs.add_parser(
            "run",
            help="generate answers with a local model or a served one (--endpoint), then score them",
            description=f"{help_text}: run a local model (--model) or a served one (--endpoint, "
            "--served-model) on the items (tether.eval.runner), write results.",
        )
        benchmark.add_options(run, run=True)
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


# ---- generic options ------------------------------------------------------------------------------


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
    _add_decoding_options(p)
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


# ---- decoding: every benchmark's `run` decodes the same way ------------------------------------------


def _add_decoding_options(p) -> None:
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


def _decoding_from_args(args, items) -> dict:
    """The decoding settings of a run (``run_benchmark``'s ``decoding``), recorded in results.json."""
    from tether.eval.run_options import default_max_new_tokens

    return {
        "max_new_tokens": args.max_new_tokens or default_max_new_tokens(items),
        "temperature": args.temperature if args.temperature > 0 else 1.0,
        "num_beams": args.num_beams,
        "do_sample": args.temperature > 0,
        "batch_size": args.batch_size,
        "seed": args.seed,
        **decoding_from_args(args),
    }


# ---- handlers ------------------------------------------------------------------------------------------


def _score(args) -> int:
    from tether.core.io import SkipLog

    benchmark = get_benchmark(args.benchmark)
    benchmark.corrected = args.corrected
    skips = SkipLog()
    scored = benchmark.score_files(args, skips)
    score = scored.score
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
            data_file=scored.data_file,
            data_version=args.data_version,
            decoding={},
            judge=scored.judge,
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
    from tether.eval.run_options import apply_prompt, limit_items, prompt_suffix_text
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
    items = limit_items(benchmark.items_from_args(args), args.limit, args.seed)
    suffixed_already = apply_prompt(items, args.prompt_template, args.prompt_suffix)
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
    decoding = _decoding_from_args(args, items)
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
        data_file=benchmark.data_file(args),
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
    from tether.core.config import load_config
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
