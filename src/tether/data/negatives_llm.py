"""The LLM backend of ``tether data negatives``: a chat model rewrites each caption with hallucinations.

Written against any object with ``complete(messages: list[dict]) -> str`` (tether's
``tether.eval.judges.client.ChatClient`` brings caching and retries; tests pass a small fake). The model must
answer with one JSON object ``{"negative": "...", "kinds": [...]}``; anything else is an invalid reply, raised
as ``InvalidRewriteReply`` so ``make_negatives`` can count and skip it (or stop, without ``--skip-invalid``).
"""

import json
import random
import re
from collections.abc import Iterable, Sequence

from tether.core.errors import DataError, TetherError
from tether.data.negatives import KINDS, Rewrite

SYSTEM_PROMPT = """You write hallucinated image captions for training a vision-language model to tell \
true descriptions from false ones.

You receive a caption that correctly describes an image. Rewrite it so that it contains hallucinations of the \
requested kinds, and is otherwise a mirror of the original: same length (within a few words), same sentence \
structure, same style and tone. Change as little as needed; keep every sentence that you do not need to change.

Kinds of hallucination:
- object: mention an object that is not in the image (replace a present object, or add one), preferably an \
object that often appears together with the objects that are there;
- attribute: change the colour, size or material of an object;
- count: change how many there are of something;
- position: change where something is or how objects relate in space (left/right, above/below, in front \
of/behind, on/under).

Answer with a single JSON object and nothing else:
{"negative": "<the rewritten caption>", "kinds": ["<each kind you injected>"]}"""


class InvalidRewriteReply(DataError):
    """The chat model's reply is not a usable rewrite."""


def rewrite_messages(caption: str, kinds: Sequence[str], present: Iterable[str] | None = None) -> list[dict]:
    """The chat messages asking for one hallucinated rewrite of ``caption``."""
    lines = [f"Caption: {caption}", f"Inject these kinds of hallucination: {', '.join(kinds)}."]
    if present:
        lines.append(f"Objects actually in the image: {', '.join(sorted(present))}.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def parse_rewrite_reply(reply: str, caption: str) -> Rewrite:
    """The rewrite in a model reply: the first JSON object in it (code fences and chatter around it allowed)."""
    if not isinstance(reply, str):
        raise InvalidRewriteReply(f"reply is {type(reply).__name__}, not text")
    obj = _first_json_object(reply)
    if obj is None:
        raise InvalidRewriteReply(f"no JSON object in reply: {reply[:80]!r}")
    negative, kinds = obj.get("negative"), obj.get("kinds")
    if not isinstance(negative, str) or not negative.strip():
        raise InvalidRewriteReply("reply has no non-empty 'negative'")
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not kinds:
        raise InvalidRewriteReply("reply has no 'kinds' list")
    kinds = [str(k).strip().lower() for k in kinds]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise InvalidRewriteReply(f"reply names unknown kinds {unknown}")
    negative = negative.strip()
    if " ".join(negative.lower().split()) == " ".join(caption.lower().split()):
        raise InvalidRewriteReply("reply repeats the caption unchanged")
    n_caption, n_negative = len(caption.split()), len(negative.split())
    if not 0.5 * n_caption <= n_negative <= 2 * n_caption + 5:
        raise InvalidRewriteReply(f"rewrite has {n_negative} words for a caption of {n_caption}")
    return Rewrite(negative, [k for k in KINDS if k in kinds], [])


def _first_json_object(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class LLMRewriter:
    """Rewrites through a chat client; which kinds to ask for is drawn per caption (1 to ``max_kinds``)."""

    name = "llm"

    def __init__(self, client, kinds: Sequence[str] = KINDS, max_kinds: int = 2):
        if not hasattr(client, "complete"):
            raise TetherError("LLM rewriter needs a client with complete(messages) -> str")
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise TetherError(f"unknown hallucination kinds {sorted(unknown)}; choose from {list(KINDS)}")
        self.client = client
        self.kinds = list(kinds)
        self.max_kinds = max(1, max_kinds)

    def rewrite(self, caption: str, present: Iterable[str] | None = None, rng: random.Random | None = None):
        rng = rng or random.Random(0)
        asked = sorted(
            rng.sample(self.kinds, rng.randint(1, min(self.max_kinds, len(self.kinds)))), key=KINDS.index
        )
        reply = self.client.complete(rewrite_messages(caption, asked, present))
        return parse_rewrite_reply(reply, caption)
