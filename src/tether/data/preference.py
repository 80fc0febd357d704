"""Preference pairs: one canonical record, and importers for the published preference datasets.

Canonical record (one JSON object per line; the field names TRL's DPO datasets use, plus provenance)::

    {"prompt": "What is on the table?", "chosen": "A cup.", "rejected": "A cup and a cat.",
     "images": ["coco/000000123.jpg"], "source": {"format": "rlaif_v", "file": "...", "line": 12}}

``images`` names files relative to an images root (exactly one per pair: tether's trainers encode one
image per sample). ``source`` is free-form provenance and is carried through untouched.

Published formats read by ``load_preference_records(path, format="auto")``:

- ``hadpo_desc``: HA-DPO ``desc_data.json``. LLaVA-1.5 version: a dict keyed by Visual Genome image id,
  each ``{"chosen": [...], "rejected": [...]}``; MiniGPT-4 version: a list of ``{"image_id", "chosen": [...],
  "rejected": [...]}``. Every chosen × rejected combination becomes a pair; the prompt is one of HA-DPO's four
  detailed-description questions, picked by image id so that an import is reproducible.
- ``hadpo_pope``: HA-DPO ``pope_data.json``: ``{"image_id", "question", "chosen", "reject" (or "rejected"),
  "correct"}``; records with ``correct: true`` are skipped, as HA-DPO's loader does.
- ``llava_rlhf``: LLaVA-RLHF ``llava_7b_v1_preference.json``: ``{"image", "conversations", "output_1",
  "output_2", "preference": 1|2}``, read as ``train reward`` reads it (``tether.data.rlhf.llava_rlhf_pair``):
  the outputs fill the last gpt turn, the human turn before it is the prompt, earlier turns are context.
- ``rlaif_v``: RLAIF-V rows exported as JSON/JSONL: ``{"question", "chosen", "rejected", "image" (a path) or
  "image_path"}``.
- ``tether``: the canonical record above (``image`` as a single string is accepted too).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.errors import DataError, TetherError, skip_or_raise
from tether.core.hf_dataset import is_dataset_source
from tether.core.io import SkipLog, read_json, read_records, readable, require_image, write_jsonl
from tether.data.rlhf import llava_rlhf_pair

FORMATS = ("tether", "hadpo_desc", "hadpo_pope", "llava_rlhf", "rlaif_v")
DEFAULT_IMAGE_PATTERN = "{image_id}.jpg"  # HA-DPO's Visual Genome ids name .jpg files

logger = logging.getLogger(__name__)

# HA-DPO's detailed-description prompts (ha_dpo/models/llava-v1_5/train_dpo.py)
HADPO_DESC_PROMPTS = (
    "Describe this image in detail.",
    "Take a look at this image and describe what you notice.",
    "Please provide a detailed description of the picture.",
    "Could you describe the contents of this image for me?",
)


@dataclass
class PreferenceRecord:
    prompt: str
    chosen: str
    rejected: str
    images: list[str]
    source: dict = field(default_factory=dict)

    @property
    def image(self) -> str:
        return self.images[0]

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "images": list(self.images),
            "source": self.source,
        }


def load_preference_records(
    path,
    *,
    format: str = "auto",
    skip_invalid: bool = False,
    skips: SkipLog | None = None,
    image_pattern: str = DEFAULT_IMAGE_PATTERN,
    images=None,
    streaming: bool = False,
) -> list[PreferenceRecord]:
    """Read preference pairs from ``path`` in any supported format (``auto`` detects it from the content).

    ``image_pattern`` turns HA-DPO's Visual Genome image ids into file names under the images root.
    Invalid records raise ``DataError`` naming ``file:line`` (JSONL line or JSON-list item), or with
    ``skip_invalid`` are skipped and counted in ``skips``; with ``images`` (the root), so are records whose
    image is missing under it.
    """
    if format != "auto" and format not in FORMATS:
        raise TetherError(f"unknown preference format '{format}'; choose from auto, {', '.join(FORMATS)}")
    path = Path(path)
    desc = _hadpo_desc_dict(path)
    if desc is not None:  # HA-DPO LLaVA desc_data.json: {image_id: {"chosen": [...], "rejected": [...]}}
        if format not in ("auto", "hadpo_desc"):
            raise DataError(f"a JSON object keyed by image id cannot be '{format}' data", path)
        rows = [(i, {"image_id": k, **v}) for i, (k, v) in enumerate(desc.items(), 1)]
        format = "hadpo_desc"
    else:
        rows = read_records(path, skip_invalid=skip_invalid, skips=skips, streaming=streaming)
        if format == "auto":  # from the first record (a streamed set's first row, put back in front)
            rows = iter(rows)
            first = next(rows, None)
            format = detect_format(first[1], path, first[0]) if first else "tether"
            rows = itertools.chain([first] if first else [], rows)
    if format in ("hadpo_desc", "hadpo_pope"):  # a default that rewrites the user's data: said when used
        default = " (the default; set data.image_pattern to change it)"
        logger.info(
            "%s: %s image ids become file names by the pattern %r%s",
            path,
            format,
            image_pattern,
            default if image_pattern == DEFAULT_IMAGE_PATTERN else "",
        )
    parse = _PARSERS[format]
    out: list[PreferenceRecord] = []
    for line, raw in rows:
        try:
            if not isinstance(raw, dict):
                raise DataError("expected a JSON object", path, line)
            records = parse(raw, path, line, image_pattern)
            if images is not None:
                for image in {image for record in records for image in record.images}:
                    require_image(images, image, path, line)
            out.extend(records)
        except _Skip as s:
            if skips is not None:
                skips.add(f"{path}:{line}: {s}")
        except DataError as e:
            skip_or_raise(e, skip_invalid, skips)
    return out


def write_preference_records(path, records: list[PreferenceRecord]) -> None:
    """Write canonical records as JSONL (replacing ``path``)."""
    write_jsonl(path, [record.to_json() for record in records])


def detect_format(raw: dict, path, line: int) -> str:
    keys = set(raw)
    if "output_1" in keys and "preference" in keys:
        return "llava_rlhf"
    if "correct" in keys or "reject" in keys:
        return "hadpo_pope"
    if "image_id" in keys and isinstance(raw.get("chosen"), list):
        return "hadpo_desc"
    if "prompt" in keys:
        return "tether"
    if "question" in keys and "chosen" in keys:
        return "rlaif_v"
    raise DataError(f"cannot tell the preference format from fields {sorted(keys)}; pass format=", path, line)


class _Skip(Exception):
    """A valid record that the format's own rules leave out (HA-DPO's correctly answered questions)."""


def _hadpo_desc_dict(path: Path) -> dict | None:
    """The file as a dict of per-image dicts if it is one JSON object of that shape, else None (JSONL...)."""
    if is_dataset_source(path):
        return None
    with open(readable(path), "rb") as f:
        if not f.read(4096).lstrip().startswith(b"{"):
            return None
    try:
        data = read_json(path)
    except DataError:
        return None  # several objects: JSONL
    if isinstance(data, dict) and data and all(isinstance(v, dict) and "chosen" in v for v in data.values()):
        return data
    return None


def _text(raw: dict, key: str, path, line, allow_empty: bool = False) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(f"field '{key}' must be a non-empty string", path, line)
    return value


def _source(fmt: str, path, line: int, **extra) -> dict:
    return {
        "format": fmt,
        "file": str(path),
        "line": line,
        **{k: v for k, v in extra.items() if v is not None},
    }


def _parse_tether(raw, path, line, image_pattern) -> list[PreferenceRecord]:
    if "images" in raw:
        images = raw["images"]
        if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
            raise DataError("field 'images' must be a list of file names", path, line)
    elif isinstance(raw.get("image"), str) and raw["image"]:
        images = [raw["image"]]
    else:
        raise DataError("record needs 'images' (a list with one file name) or 'image'", path, line)
    if len(images) != 1:
        raise DataError(f"a pair must have exactly one image, got {len(images)}", path, line)
    chosen, rejected = _text(raw, "chosen", path, line), _text(raw, "rejected", path, line)
    source = raw.get("source") if isinstance(raw.get("source"), dict) else _source("tether", path, line)
    return [PreferenceRecord(_text(raw, "prompt", path, line), chosen, rejected, images, source)]


def _image_from_id(raw, path, line, image_pattern) -> tuple[str, str]:
    image_id = raw.get("image_id")
    if not isinstance(image_id, int | str) or isinstance(image_id, bool) or str(image_id) == "":
        raise DataError("field 'image_id' must be an id", path, line)
    try:
        return str(image_id), image_pattern.format(image_id=image_id)
    except (KeyError, IndexError, ValueError) as e:  # a bad pattern, or `{image_id:012d}` given a str id
        raise DataError(
            f"image pattern {image_pattern!r} cannot format id {image_id!r} ({e})", path, line
        ) from None


def _parse_hadpo_desc(raw, path, line, image_pattern) -> list[PreferenceRecord]:
    image_id, image = _image_from_id(raw, path, line, image_pattern)
    lists = {}
    for key in ("chosen", "rejected"):
        value = raw.get(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise DataError(f"field '{key}' must be a non-empty list of strings", path, line)
        lists[key] = [v.replace("\n", "") for v in value]  # HA-DPO strips newlines from descriptions
    prompt = HADPO_DESC_PROMPTS[sum(map(ord, image_id)) % len(HADPO_DESC_PROMPTS)]
    return [
        PreferenceRecord(prompt, c, r, [image], _source("hadpo_desc", path, line, image_id=image_id))
        for c in lists["chosen"]
        for r in lists["rejected"]
    ]


def _parse_hadpo_pope(raw, path, line, image_pattern) -> list[PreferenceRecord]:
    if raw.get("correct") is True:
        raise _Skip("answered correctly ('correct': true), not a preference pair")
    image_id, image = _image_from_id(raw, path, line, image_pattern)
    rejected_key = "reject" if "reject" in raw else "rejected"
    return [
        PreferenceRecord(
            _text(raw, "question", path, line),
            _text(raw, "chosen", path, line),
            _text(raw, rejected_key, path, line),
            [image],
            _source("hadpo_pope", path, line, image_id=image_id, answer=raw.get("answer")),
        )
    ]


def _parse_llava_rlhf(raw, path, line, image_pattern) -> list[PreferenceRecord]:
    prompt, chosen, rejected = llava_rlhf_pair(raw, path, line)
    image = _text(raw, "image", path, line)
    return [
        PreferenceRecord(
            prompt, chosen, rejected, [image], _source("llava_rlhf", path, line, id=raw.get("id"))
        )
    ]


def _parse_rlaif_v(raw, path, line, image_pattern) -> list[PreferenceRecord]:
    image = raw.get("image_path") if isinstance(raw.get("image_path"), str) else raw.get("image")
    if not isinstance(image, str) or not image:
        raise DataError("RLAIF-V record needs 'image' or 'image_path' as a file name", path, line)
    extra = {k: raw.get(k) for k in ("ds_name", "origin_dataset", "origin_split", "idx")}
    return [
        PreferenceRecord(
            _text(raw, "question", path, line),
            _text(raw, "chosen", path, line),
            _text(raw, "rejected", path, line),
            [image],
            _source("rlaif_v", path, line, **extra),
        )
    ]


_PARSERS = {
    "tether": _parse_tether,
    "hadpo_desc": _parse_hadpo_desc,
    "hadpo_pope": _parse_hadpo_pope,
    "llava_rlhf": _parse_llava_rlhf,
    "rlaif_v": _parse_rlaif_v,
}
