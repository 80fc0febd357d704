"""The options people reach for first on ``tether eval <benchmark> run``, applied to the loaded items.

- ``--limit N``: a seeded random subset of N items (file order kept), the same for the same seed.
- ``--prompt-template`` / ``--prompt-suffix``: what the model is asked, built from each item's question.
  ``llava-short`` is LLaVA's official POPE/MME suffix, appended on a new line as LLaVA's question files do.
- ``max_new_tokens``: unset, yes/no benchmarks stop at ``YES_NO_MAX_NEW_TOKENS`` (the scorers read the
  first sentence or the first characters) and free-form ones at ``FREE_MAX_NEW_TOKENS``.

What was applied is returned as a record for ``results.json``.
"""

import random

from tether.core.errors import TetherError
from tether.eval.benchmark import EvalItem

PROMPT_SUFFIXES = {"llava-short": "Answer the question using a single word or phrase."}
YES_NO_MAX_NEW_TOKENS = 64  # a whole short first sentence ("No, there is no dog in the image.") fits
FREE_MAX_NEW_TOKENS = 512


def limit_items(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """``limit`` items drawn with ``seed`` (all of them when ``limit`` is None or not smaller)."""
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise TetherError(f"--limit must be >= 1, got {limit}")
    keep = set(random.Random(seed).sample(range(len(items)), limit))
    return [item for i, item in enumerate(items) if i in keep]


def prompt_suffix_text(suffix: str | None) -> str | None:
    """A preset name (``llava-short``) as its text; any other value is the suffix itself."""
    return PROMPT_SUFFIXES.get(suffix, suffix) if suffix else None


def apply_prompt(items: list[EvalItem], template: str | None, suffix: str | None) -> int:
    """Rewrite each item's prompt: ``template`` with ``{question}`` filled, then ``suffix`` on a new line.

    A question that already ends with the suffix (LLaVA's own question files carry it) is left as it is;
    returns how many were, so results can say so."""
    if template is not None and "{question}" not in template:
        raise TetherError("--prompt-template needs the placeholder {question}")
    suffix = prompt_suffix_text(suffix)
    already = 0
    for item in items:
        prompt = template.replace("{question}", item.prompt) if template else item.prompt
        if suffix and prompt.rstrip().endswith(suffix):
            already += 1
        elif suffix:
            prompt = f"{prompt}\n{suffix}"
        item.prompt = prompt
    return already


def default_max_new_tokens(items: list[EvalItem]) -> int:
    return (
        YES_NO_MAX_NEW_TOKENS
        if items and all(item.kind == "yesno" for item in items)
        else FREE_MAX_NEW_TOKENS
    )
