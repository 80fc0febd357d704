"""The LLM parts of ``tether data pairs`` (HA-DPO): sentence judge, corrector, style rewriter.

A text-only chat model cannot see the image, so each of the three is given the image's *facts*: reference
captions, object lists, region descriptions, any ground truth the user supplies per image. Each asks for
one strict JSON object (the prompts below are documented word for word in docs/pairs.md) and validates the
reply; a reply that cannot be used raises :class:`InvalidPairReply` naming the image. With ``lenient=True``
the judge counts such a reply as "cannot judge" for every sentence and the corrector drops the hallucinated
sentences instead; the reasons are kept in ``invalid_replies`` for the run report.

All three work with any client that has ``complete(messages) -> str`` (``tether.eval.judges.ChatClient``
brings the reply cache and bounded retries).
"""

import json

from tether.core.errors import DataError, TetherError
from tether.data.negatives_llm import _first_json_object
from tether.data.pairs import drop_hallucinated
from tether.eval.shr import LABELS

JUDGE_PROMPT = """You check detailed image descriptions written by a vision-language model for hallucinations.

You cannot see the image. Instead you receive facts about it, which are 100% accurate: reference \
captions, the objects present, region descriptions or other ground truth. Then you receive the \
description's sentences, numbered. Label every sentence with exactly one of:
- "correct": what the sentence claims is supported by the facts;
- "hallucination": the sentence claims something the facts contradict, or mentions an object, attribute, \
count or position that the facts do not support;
- "cannot judge": the sentence is subjective (mood, style, atmosphere) or about something the facts \
cannot settle either way.

Answer with a single JSON object and nothing else, one label per sentence, in order:
{"labels": ["correct", "hallucination", "cannot judge", ...]}"""

CORRECT_PROMPT = """You correct hallucinated sentences in a detailed image description.

You cannot see the image. Instead you receive facts about it, which are 100% accurate, and the \
description's sentences, numbered, each marked [correct], [hallucination] or [cannot judge]. Rewrite each \
sentence marked [hallucination] so that it is true according to the facts, changing as few words as \
possible and keeping the sentence's style, length and structure. If a sentence cannot be made true \
without inventing content, drop it by answering null for it. Do not touch the other sentences.

Answer with a single JSON object and nothing else, one entry per [hallucination] sentence, in order:
{"corrections": ["<corrected sentence>" or null, ...]}"""

REWRITE_PROMPT = """You prepare preference pairs for training a vision-language model not to hallucinate.

You receive two descriptions of the same image: CHOSEN is accurate, REJECTED contains hallucinations. \
Write the requested number of variants. In each variant, rewrite both descriptions in one and the same \
style, so that they are worded identically wherever their content is the same and differ only in the \
hallucinated content: keep every hallucination of REJECTED in the rewritten rejected description, add \
nothing false to the rewritten chosen one, and add no new content to either. Use a different style in \
each variant (wording, sentence order, sentence length, tone).

Answer with a single JSON object and nothing else:
{"variants": [{"chosen": "<rewritten chosen>", "rejected": "<rewritten rejected>"}, ...]}"""


class InvalidPairReply(DataError):
    """The chat model's reply cannot be used for the pair pipeline."""


def facts_message(facts: list[str]) -> str:
    """The facts block every prompt starts its user message with."""
    return "Facts about the image:\n" + "".join(f"- {fact}\n" for fact in facts)


def judge_messages(facts: list[str], sentences: list[str]) -> list[dict]:
    """The chat asking for one label per sentence."""
    numbered = "".join(f"{n}. {s}\n" for n, s in enumerate(sentences, start=1))
    user = f"{facts_message(facts)}\nSentences ({len(sentences)}):\n{numbered}"
    return [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": user}]


def correct_messages(facts: list[str], sentences: list[str], labels: list[str]) -> list[dict]:
    """The chat asking for a correction (or null) for each hallucinated sentence."""
    numbered = "".join(f"{n}. [{label}] {s}\n" for n, (s, label) in enumerate(zip(sentences, labels), 1))
    n_wrong = labels.count("hallucination")
    user = f"{facts_message(facts)}\nSentences ({n_wrong} marked [hallucination]):\n{numbered}"
    return [{"role": "system", "content": CORRECT_PROMPT}, {"role": "user", "content": user}]


def rewrite_messages(facts: list[str], chosen: str, rejected: str, variants: int) -> list[dict]:
    """The chat asking for ``variants`` style-consistent rewrites of a (chosen, rejected) pair."""
    user = f"{facts_message(facts)}\nCHOSEN: {chosen}\nREJECTED: {rejected}\n\nNumber of variants: {variants}"
    return [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": user}]


def parse_labels(reply: str, n_sentences: int, image_id: str) -> list[str]:
    """The labels in a judge reply: exactly one known label per sentence, or InvalidPairReply."""
    obj = _reply_object(reply, image_id)
    labels = obj.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InvalidPairReply(f"image {image_id}: judge reply has no 'labels' list of strings")
    if len(labels) != n_sentences:
        raise InvalidPairReply(
            f"image {image_id}: judge gave {len(labels)} labels for {n_sentences} sentences"
        )
    labels = [_normalise_label(label) for label in labels]
    unknown = sorted({label for label in labels if label not in LABELS})
    if unknown:
        raise InvalidPairReply(f"image {image_id}: judge reply has unknown labels {unknown}")
    return labels


def parse_corrections(reply: str, sentences: list[str], labels: list[str], image_id: str) -> list[str]:
    """The corrected sentences: each hallucinated one replaced by its correction, or dropped for null."""
    obj = _reply_object(reply, image_id)
    corrections = obj.get("corrections")
    wrong = [s for s, label in zip(sentences, labels) if label == "hallucination"]
    if not isinstance(corrections, list):
        raise InvalidPairReply(f"image {image_id}: corrector reply has no 'corrections' list")
    if len(corrections) != len(wrong):
        raise InvalidPairReply(
            f"image {image_id}: corrector gave {len(corrections)} corrections for {len(wrong)} "
            "hallucinated sentences"
        )
    fixes = iter(corrections)
    corrected = []
    for sentence, label in zip(sentences, labels):
        if label != "hallucination":
            corrected.append(sentence)
            continue
        fix = next(fixes)
        if fix is None or (isinstance(fix, str) and not fix.strip()):
            continue  # dropped: nothing true could replace it
        if not isinstance(fix, str):
            raise InvalidPairReply(f"image {image_id}: correction is {type(fix).__name__}, not text")
        if _same_text(fix, sentence):
            raise InvalidPairReply(f"image {image_id}: corrector returned a hallucinated sentence unchanged")
        corrected.append(fix.strip())
    return corrected


def parse_variants(reply: str, variants: int, image_id: str) -> list[tuple[str, str]]:
    """``variants`` (chosen, rejected) rewrites: non-empty, chosen differs from rejected, no two alike."""
    obj = _reply_object(reply, image_id)
    items = obj.get("variants")
    if not isinstance(items, list) or len(items) != variants:
        got = len(items) if isinstance(items, list) else "no"
        raise InvalidPairReply(f"image {image_id}: rewriter gave {got} variants, {variants} asked")
    pairs: list[tuple[str, str]] = []
    for number, item in enumerate(items, start=1):
        chosen = item.get("chosen") if isinstance(item, dict) else None
        rejected = item.get("rejected") if isinstance(item, dict) else None
        if not (
            isinstance(chosen, str) and chosen.strip() and isinstance(rejected, str) and rejected.strip()
        ):
            raise InvalidPairReply(
                f"image {image_id}: variant {number} lacks a non-empty chosen and rejected"
            )
        if _same_text(chosen, rejected):
            raise InvalidPairReply(f"image {image_id}: variant {number} has chosen == rejected")
        if any(_same_text(chosen, c) and _same_text(rejected, r) for c, r in pairs):
            raise InvalidPairReply(f"image {image_id}: variant {number} repeats an earlier variant")
        pairs.append((chosen.strip(), rejected.strip()))
    return pairs


class LLMPairJudge:
    """Sentence judge (``judge(image_id, sentences)``) and corrector (``judge.correct``) for ``build_pairs``.

    ``facts`` maps image id -> list of true statements about the image; an image without facts is an error
    (a text-only judge would be guessing).
    """

    def __init__(self, client, facts: dict[str, list[str]], lenient: bool = False):
        if not hasattr(client, "complete"):
            raise TetherError("the LLM pair judge needs a client with complete(messages) -> str")
        self.client = client
        self.facts = facts
        self.lenient = lenient
        self.invalid_replies: list[str] = []
        self.name = f"llm:{getattr(client, 'model', type(client).__name__)}"

    def __call__(self, image_id: str, sentences: list[str]) -> list[str]:
        reply = self.client.complete(judge_messages(self._facts(image_id), sentences))
        try:
            return parse_labels(reply, len(sentences), image_id)
        except InvalidPairReply as e:
            if not self.lenient:
                raise
            self.invalid_replies.append(f"judge: {e}")
            return ["cannot judge"] * len(sentences)

    def correct(self, image_id: str, sentences: list[str], labels: list[str]) -> list[str]:
        reply = self.client.complete(correct_messages(self._facts(image_id), sentences, labels))
        try:
            return parse_corrections(reply, sentences, labels, image_id)
        except InvalidPairReply as e:
            if not self.lenient:
                raise
            self.invalid_replies.append(f"corrector: {e}")
            return drop_hallucinated(image_id, sentences, labels)

    def _facts(self, image_id: str) -> list[str]:
        facts = self.facts.get(image_id)
        if not facts:
            raise TetherError(f"image {image_id}: no facts for the LLM judge (give 'facts' or 'captions')")
        return facts


class LLMStyleRewriter:
    """HA-DPO's rewriting step: ``rewriter(image_id, chosen, rejected, n)`` -> n (chosen, rejected) variants.

    Facts are optional here (the world's rule judge needs none) but help the model keep chosen true.
    An invalid reply always raises: a half-rewritten pair would mix styles, the thing this step removes.
    """

    def __init__(self, client, facts: dict[str, list[str]] | None = None):
        if not hasattr(client, "complete"):
            raise TetherError("the LLM style rewriter needs a client with complete(messages) -> str")
        self.client = client
        self.facts = facts or {}

    def __call__(self, image_id: str, chosen: str, rejected: str, variants: int) -> list[tuple[str, str]]:
        if variants < 1:
            raise TetherError(f"variants must be >= 1, got {variants}")
        facts = self.facts.get(image_id) or ["(none given)"]
        reply = self.client.complete(rewrite_messages(facts, chosen, rejected, variants))
        return parse_variants(reply, variants, image_id)


def _reply_object(reply, image_id: str) -> dict:
    if not isinstance(reply, str):
        raise InvalidPairReply(f"image {image_id}: reply is {type(reply).__name__}, not text")
    obj = _first_json_object(reply)
    if obj is None:
        raise InvalidPairReply(f"image {image_id}: no JSON object in reply: {json.dumps(reply[:80])}")
    return obj


def _normalise_label(label: str) -> str:
    """``"Cannot_Judge"``, ``" hallucination "`` -> the canonical spelling; anything else unchanged."""
    return " ".join(label.strip().lower().replace("_", " ").replace("-", " ").split())


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()).rstrip(".") == " ".join(b.lower().split()).rstrip(".")
