"""Records for Fact-RLHF: preference pairs (reward model) and prompts (PPO), with LLaVA-RLHF importers.

Preference pairs, one per line (JSONL or a JSON list):

- tether: ``{"image", "prompt", "chosen", "rejected", "facts"?: [str], "options"?: [str]}``, the image also as
  ``"images": [one file]`` (what ``tether data answer-pairs`` and the DPO importers write);
- LLaVA-RLHF (``LLaVA-Human-Preference-10K``): ``{"image", "conversations", "output_1": {"value"},
  "output_2": {"value"}, "preference": 1|2}``; the last gpt turn of ``conversations`` is the slot the two
  outputs fill, the human turn before it is the prompt, earlier turns become context in the prompt.

PPO prompts:

- tether: ``{"image", "prompt", "facts"?, "options"?, "answer"?, "length_bonus"?}``; ``answer`` is the
  ground truth for the symbolic bonus ("yes"/"no" or an option letter); QA records ``{"image", "question",
  "answer"}`` and POPE questions ``{"image", "text", "label"}`` (a world's ``text/*_qa.jsonl``,
  ``pref_questions.jsonl``) read the same way;
- LLaVA-RLHF (``llava_ppo50k-...json``): ``{"image", "conversations", "caption_type"?, "length_bonus"?}``;
  ``caption_type`` 2-5 means the correct option is A-D, 6 the answer is "no", 7 "yes", 1 a general question.

Facts come from the record (``facts`` or ``captions``) and/or from LLaVA-RLHF's ``image_to_caption.json``
(``{image: [captions]}``; multiple-choice prompts look their captions up under ``"aok_" + image``, as
LLaVA-RLHF's PPO trainer does).
"""

import math
from dataclasses import dataclass, field

from tether.core.errors import DataError
from tether.core.io import SkipLog, parse_records, read_json

# LLaVA-RLHF's AnswerType enum (data_utils/constants.py) as ground-truth answers
CAPTION_TYPE_ANSWERS = {1: None, 2: "A", 3: "B", 4: "C", 5: "D", 6: "no", 7: "yes"}


@dataclass
class PreferenceRecord:
    image: str | None
    prompt: str
    chosen: str
    rejected: str
    facts: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class PromptRecord:
    image: str | None
    prompt: str
    facts: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    answer: str | None = None  # ground truth for the symbolic bonus: "yes", "no" or an option letter
    length_bonus: float = 1.0  # per-prompt multiplier of the length term (LLaVA-RLHF's length_bonus)


def load_captions(path) -> dict[str, list[str]]:
    """LLaVA-RLHF's ``image_to_caption.json``: ``{image file: [caption, ...]}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a JSON object mapping image names to lists of captions", path)
    out = {}
    for image, captions in data.items():
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise DataError(f"captions of '{image}' must be a list of strings", path)
        out[image] = captions
    return out


def load_preference_records(
    path,
    *,
    captions: dict | None = None,
    skip_invalid: bool = False,
    skips: SkipLog | None = None,
    images=None,
    streaming: bool = False,
) -> list[PreferenceRecord]:
    """Read preference pairs in tether's or LLaVA-RLHF's format (detected per record); with ``images`` (the
    root), a pair whose image is missing is a ``path:line`` error."""
    return _load(path, _parse_preference, captions, skip_invalid, skips, images, streaming)


def load_prompt_records(
    path,
    *,
    captions: dict | None = None,
    skip_invalid: bool = False,
    skips: SkipLog | None = None,
    images=None,
    streaming: bool = False,
) -> list[PromptRecord]:
    """Read PPO prompts in tether's or LLaVA-RLHF's format (detected per record)."""
    return _load(path, _parse_prompt, captions, skip_invalid, skips, images, streaming)


def _load(path, parse, captions, skip_invalid, skips, images, streaming):
    return parse_records(
        path,
        lambda raw, path, line: parse(raw, captions, path, line),
        skip_invalid=skip_invalid,
        skips=skips,
        images=images,
        streaming=streaming,
    )


def _text(raw: dict, key: str, path, line) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"field '{key}' must be a non-empty string", path, line)
    return value


def _strings(raw: dict, key: str, path, line) -> list[str]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"field '{key}' must be a list of strings", path, line)
    return list(value)


def _image(raw: dict, path, line) -> str | None:
    image = raw.get("image")
    if image is None and "images" in raw:
        images = raw["images"]
        if not isinstance(images, list) or len(images) != 1:
            raise DataError(
                "field 'images' must list exactly one image file (one image per pair)", path, line
            )
        image = images[0]
    if image is not None and (not isinstance(image, str) or not image):
        raise DataError("field 'image' must be a file name", path, line)
    return image


def _facts(raw: dict, image: str | None, captions: dict | None, caption_key: str | None, path, line):
    facts = _strings(raw, "facts", path, line) + _strings(raw, "captions", path, line)
    if captions is not None and image is not None:
        key = caption_key or image
        if key not in captions:
            raise DataError(f"no captions for '{key}' in the image-to-caption file", path, line)
        facts += captions[key]
    return facts


def _conversation_prompt(raw: dict, path, line, *, drop_last_gpt: bool) -> str:
    """The human turn that asks for the response; earlier exchanges are kept as context before it."""
    turns = raw.get("conversations")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        raise DataError("'conversations' must be a list of turns", path, line)
    if drop_last_gpt:  # the gpt slot the two outputs fill (LLaVA-RLHF asserts it); a file may leave it out
        turns = turns[:-1] if turns[-1].get("from") == "gpt" else turns
    else:  # PPO prompts: the first exchange, as LLaVA-RLHF's QueryResponseDataset keeps
        turns = turns[:1]
    if not turns or turns[-1].get("from") != "human":
        raise DataError("expected a human turn before the response", path, line)
    context = []
    for turn in turns[:-1]:
        speaker = "User" if turn.get("from") == "human" else "Assistant"
        context.append(f"{speaker}: {_text(turn, 'value', path, line).replace('<image>', '').strip()}")
    question = _text(turns[-1], "value", path, line).replace("<image>", "").strip()
    return "\n".join(context + [question])


def llava_rlhf_pair(raw: dict, path, line) -> tuple[str, str, str]:
    """``(prompt, chosen, rejected)`` of a LLaVA-RLHF preference record, the one reading of the format for
    every trainer (reward model and DPO). As in LLaVA-RLHF's reward-model data: ``output_1`` / ``output_2``
    fill the last gpt turn of ``conversations``, the human turn before it is the prompt, earlier turns
    come before it as ``User:`` / ``Assistant:`` context; ``preference`` names the better output."""
    outputs = []
    for key in ("output_1", "output_2"):
        output = raw.get(key)
        if not isinstance(output, dict):
            raise DataError(f"field '{key}' must be an object with a 'value'", path, line)
        outputs.append(_text(output, "value", path, line))
    preference = raw.get("preference")
    if preference not in (1, 2) or isinstance(preference, bool):
        raise DataError(f"field 'preference' must be 1 or 2, got {preference!r}", path, line)
    chosen, rejected = outputs if preference == 1 else outputs[::-1]
    return _conversation_prompt(raw, path, line, drop_last_gpt=True), chosen, rejected


def _parse_preference(raw: dict, captions, path, line) -> PreferenceRecord:
    image = _image(raw, path, line)
    if "output_1" in raw:
        prompt, chosen, rejected = llava_rlhf_pair(raw, path, line)
        return PreferenceRecord(
            image, prompt, chosen, rejected, _facts(raw, image, captions, None, path, line)
        )
    return PreferenceRecord(
        image,
        _text(raw, "prompt", path, line),
        _text(raw, "chosen", path, line),
        _text(raw, "rejected", path, line),
        _facts(raw, image, captions, None, path, line),
        _strings(raw, "options", path, line),
    )


def _parse_prompt(raw: dict, captions, path, line) -> PromptRecord:
    image = _image(raw, path, line)
    length_bonus = raw.get("length_bonus", 1.0)
    if (
        not isinstance(length_bonus, int | float)
        or isinstance(length_bonus, bool)
        or not math.isfinite(length_bonus)
    ):
        raise DataError("field 'length_bonus' must be a number", path, line)
    if "conversations" in raw:
        caption_type = raw.get("caption_type", 1)
        if type(caption_type) is not int or caption_type not in CAPTION_TYPE_ANSWERS:
            raise DataError(f"field 'caption_type' must be 1-7, got {caption_type!r}", path, line)
        answer = CAPTION_TYPE_ANSWERS[caption_type]
        multiple_choice = answer is not None and len(answer) == 1
        caption_key = f"aok_{image}" if multiple_choice and image else None
        return PromptRecord(
            image,
            _conversation_prompt(raw, path, line, drop_last_gpt=False),
            _facts(raw, image, captions, caption_key, path, line),
            [],
            answer,
            float(length_bonus),
        )
    # tether's prompt, a QA record's question, a POPE question's text (its label is the answer)
    prompt_key, answer_key = next(
        (
            keys
            for keys in (("prompt", "answer"), ("question", "answer"), ("text", "label"))
            if keys[0] in raw
        ),
        ("prompt", "answer"),
    )
    answer = raw.get(answer_key)
    if answer is not None and (not isinstance(answer, str) or not answer.strip()):
        raise DataError(f"field '{answer_key}' must be a non-empty string", path, line)
    return PromptRecord(
        image,
        _text(raw, prompt_key, path, line),
        _facts(raw, image, captions, None, path, line),
        _strings(raw, "options", path, line),
        answer.strip() if answer else None,
        float(length_bonus),
    )
