"""A persistent cache of judge replies: one JSONL line per reply, append-only, each line checksummed.

A rerun of an evaluation asks the judge the same prompts again; the cache answers them for free. The
key is the sha256 of (model, reply-affecting settings, messages). Each line also carries a sha256 of
its own content, so a line that was cut short by a crash or edited by hand is reported with its
``file:line`` and ignored, never used as a reply. Only successful replies are ever written.

Two processes may share a cache file: each entry is a single ``write`` of one line to a file opened
for appending (``tether.core.io.append_jsonl``), so lines do not interleave. A process sees the other's
entries the next time it loads the file.
"""

import hashlib
import json
import logging
from pathlib import Path

from tether.core.io import SkipLog, append_jsonl, iter_jsonl

log = logging.getLogger(__name__)

CACHE_FILE = "judge_cache.jsonl"


def cache_key(model: str, settings: dict, messages: list[dict]) -> str:
    """sha256 of the canonical JSON of everything that decides the reply."""
    blob = json.dumps({"model": model, "settings": settings, "messages": messages}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _checksum(entry: dict) -> str:
    content = {name: value for name, value in entry.items() if name != "checksum"}
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """Judge replies keyed by :func:`cache_key`, loaded from and appended to ``cache_dir/judge_cache.jsonl``."""

    def __init__(self, cache_dir):
        self.path = Path(cache_dir) / CACHE_FILE
        self.entries: dict[str, dict] = {}
        self.corrupt_lines = 0
        self.load()

    def load(self) -> None:
        """(Re)read the file; corrupted or tampered lines are logged as warnings and skipped."""
        self.entries = {}
        self.corrupt_lines = 0
        if not self.path.is_file():
            return
        skips = SkipLog()
        for line_no, entry in iter_jsonl(self.path, skip_invalid=True, skips=skips):
            problem = _problem(entry)
            if problem:
                skips.add(f"{self.path}:{line_no}: {problem}")
                continue
            self.entries[entry["key"]] = entry
        self.corrupt_lines = skips.skipped
        for reason in skips.reasons:
            log.warning("judge cache: ignoring corrupted entry %s", reason)
        if skips.skipped > len(skips.reasons):
            log.warning(
                "judge cache: %d more corrupted entries in %s", skips.skipped - len(skips.reasons), self.path
            )

    def get(self, key: str) -> dict | None:
        """The stored entry (``reply``, ``usage``, ``model``) or None."""
        return self.entries.get(key)

    def put(self, key: str, model: str, reply: str, usage: dict) -> None:
        """Store one successful reply; the caller never passes a failed one."""
        entry = {"key": key, "model": model, "reply": reply, "usage": usage}
        entry["checksum"] = _checksum(entry)
        append_jsonl(self.path, entry)
        self.entries[key] = entry

    def __len__(self) -> int:
        return len(self.entries)


def _problem(entry: dict) -> str | None:
    """Why an entry cannot be trusted, or None when it can."""
    if not isinstance(entry.get("key"), str) or not isinstance(entry.get("reply"), str):
        return "missing 'key' or 'reply'"
    if entry.get("checksum") != _checksum(entry):
        return "checksum mismatch (line altered or damaged)"
    return None
