"""`tether judge ...`: ask a judge one question (to check a server and key), inspect a reply cache."""

from tether.core.options import add_set_option


def register(subparsers) -> None:
    parser = subparsers.add_parser("judge", help="check an LLM judge server, inspect a judge reply cache")
    verbs = parser.add_subparsers(dest="judge_verb", metavar="<verb>", required=True)

    ask = verbs.add_parser(
        "ask",
        help="send one prompt to the judge and print the reply, its settings and usage",
        description="Send one prompt to an OpenAI-compatible judge (the OpenAI API or a local vLLM server) "
        "and print the reply, the judge settings a results file would record, and the usage line. "
        "The config is a judge section: model, base_url, api_key_env, temperature, max_tokens, timeout, "
        "max_retries, backoff, cache_dir, price_per_1k_input, price_per_1k_output.",
    )
    ask.add_argument("prompt", help="the user message")
    ask.add_argument("--system", help="an optional system message")
    add_set_option(ask)
    ask.set_defaults(handler=_ask)

    cache = verbs.add_parser(
        "cache",
        help="count the entries of a judge cache and report damaged lines (exit 1 if any)",
    )
    cache.add_argument("cache_dir", help="the judge cache_dir (holding judge_cache.jsonl)")
    cache.set_defaults(handler=_cache)


def _ask(args) -> int:
    import json

    from tether.core.config import load_config
    from tether.eval.judges import JudgeConfig, make_client

    client = make_client(load_config(JudgeConfig, args.config, args.overrides))
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.prompt})
    print(client.complete(messages))
    print(json.dumps({"judge": client.settings(), "usage": client.usage.to_dict()}))
    print(client.usage_report())
    return 0


def _cache(args) -> int:
    from pathlib import Path

    from tether.core.errors import TetherError
    from tether.eval.judges import ReplyCache

    cache = ReplyCache(args.cache_dir)
    if not cache.path.is_file():
        raise TetherError(f"no judge cache at {cache.path}")
    models = sorted({entry.get("model", "?") for entry in cache.entries.values()})
    prompt_tokens = sum(int(e.get("usage", {}).get("prompt_tokens", 0)) for e in cache.entries.values())
    completion_tokens = sum(
        int(e.get("usage", {}).get("completion_tokens", 0)) for e in cache.entries.values()
    )
    print(f"{Path(cache.path)}: {len(cache)} replies from {', '.join(models) or 'no model'}")
    print(f"tokens a rerun saves: {prompt_tokens} prompt + {completion_tokens} completion")
    print(f"damaged lines (ignored): {cache.corrupt_lines}")
    return 1 if cache.corrupt_lines else 0
