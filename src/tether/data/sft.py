"""Supervised records: (image, prompt, response), or text alone for language-model pretraining.

Accepted per line (JSONL or a JSON list): tether's ``{"image", "prompt", "response"}``; QA
``{"image", "question", "answer"}``; LLaVA's ``{"image", "conversations": [{"from": "human", ...},
{"from": "gpt", ...}, ...]}`` (each human/gpt exchange becomes one record; ``<image>`` markers are removed
because the chat template places the image); captions ``{"image", "caption"}`` and descriptions
``{"image", "description"}`` (the synthetic world's, COCO-style caption files), asked for with
``CAPTION_PROMPT`` / ``DESCRIPTION_PROMPT``; and ``{"text"}`` for text-only records. A ``.txt`` file is a
text corpus: each non-empty line is one text-only record (the world's ``lm_corpus.txt``).
"""

from dataclasses import dataclass
from pathlib import Path

from tether.core.errors import DataError
from tether.core.io import SkipLog, parse_records, read_text_lines

# The instructions of records that carry only the answer (LLaVA's brief and detailed description prompts;
# under the ``plain`` template of stage-1 alignment no instruction is shown at all).
CAPTION_PROMPT = "Describe this image briefly."
DESCRIPTION_PROMPT = "Describe this image in detail."


@dataclass
class SFTRecord:
    image: str | None  # relative to the images root; None for text-only records
    prompt: str | None  # None for text-only records
    response: str


def load_sft_records(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None, images=None, streaming: bool = False
) -> list[SFTRecord]:
    """SFT records (a ``.txt`` corpus: one text-only record a line); with ``images`` (the root), a record
    whose image is missing is a ``path:line`` error."""
    if Path(path).suffix == ".txt":
        return [SFTRecord(None, None, line.strip()) for line in read_text_lines(path) if line.strip()]
    return parse_records(
        path, _parse, skip_invalid=skip_invalid, skips=skips, images=images, streaming=streaming
    )


def _text(raw: dict, key: str, path, line) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"field '{key}' must be a non-empty string", path, line)
    return value


def _parse(raw: dict, path, line) -> list[SFTRecord]:
    image = raw.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise DataError("field 'image' must be a file name", path, line)
    if "conversations" in raw:
        turns = raw["conversations"]
        if not isinstance(turns, list) or len(turns) < 2 or len(turns) % 2:
            raise DataError("'conversations' must alternate human/gpt turns", path, line)
        out = []
        for i in range(0, len(turns), 2):
            human, gpt = turns[i], turns[i + 1]
            if (
                not (isinstance(human, dict) and isinstance(gpt, dict))
                or human.get("from") != "human"
                or gpt.get("from") != "gpt"
            ):
                raise DataError(
                    f"conversation turn {i + 1}: expected a human turn then a gpt turn", path, line
                )
            prompt = _text(human, "value", path, line).replace("<image>", "").strip()
            out.append(SFTRecord(image, prompt, _text(gpt, "value", path, line)))
        return out
    if "prompt" in raw:
        return [SFTRecord(image, _text(raw, "prompt", path, line), _text(raw, "response", path, line))]
    if "question" in raw:
        return [SFTRecord(image, _text(raw, "question", path, line), _text(raw, "answer", path, line))]
    for key, prompt in (("caption", CAPTION_PROMPT), ("description", DESCRIPTION_PROMPT)):
        if key in raw:
            if image is None:
                raise DataError(f"a '{key}' record needs the 'image' it is about", path, line)
            return [SFTRecord(image, prompt, _text(raw, key, path, line))]
    if "text" in raw:
        if image is not None:
            raise DataError("a text-only record ('text') cannot name an image", path, line)
        return [SFTRecord(None, None, _text(raw, "text", path, line))]
    raise DataError(
        "record has none of 'conversations', 'prompt'/'response', 'question'/'answer', 'caption', "
        "'description', 'text'",
        path,
        line,
    )
