"""JSON/JSONL reading and appending with errors that name the file and line.

Every loader in tether reads through these functions, so that bad input is reported the same way
everywhere: ``path:line: what is wrong``, or, with ``skip_invalid=True``, skipped and counted.
"""

import atexit
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.errors import DataError, TetherError, skip_or_raise
from tether.core.hf_dataset import dataset_rows, is_dataset_source, iter_dataset_rows

logger = logging.getLogger(__name__)


@dataclass
class SkipLog:
    """Counts records skipped under ``skip_invalid`` and keeps the first few reasons for the report."""

    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 20:
            self.reasons.append(reason)

    def summary(self, what: str = "records") -> str:
        """One line for the end of a command: the count and the first reasons."""
        if not self.skipped:
            return f"no {what} skipped"
        shown = "; ".join(self.reasons[:3])
        more = f"; ... ({len(self.reasons)} reasons kept in the run record)" if len(self.reasons) > 3 else ""
        return f"{self.skipped} {what} skipped: {shown}{more}"

    def report(self, what: str = "records") -> None:
        """Log the summary at the end of a command, where a user looks (nothing when nothing was skipped)."""
        if self.skipped:
            logger.warning("%s", self.summary(what))

    def require(self, items, message: str, what: str = "records") -> None:
        """Raise ``TetherError(message)`` when ``items`` is empty, with what was skipped and why."""
        if not items:
            raise TetherError(f"{message} ({self.summary(what)})")


_SPOOLED: dict[str, Path] = {}


def readable(path) -> Path:
    """The file to open for input ``path``: the file itself, or for a pipe (``--answers <(...)``, a FIFO) a
    copy of what it gave, read once per process so that a loader may open it again (format sniffing).

    Raises ``DataError`` naming ``path`` when there is nothing readable there.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise DataError("file not found", path) from None
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISDIR(mode):
        raise DataError("is a folder, expected a file", path)
    if str(path) not in _SPOOLED:
        fd, copy = tempfile.mkstemp(prefix="tether-input-")
        with open(path, "rb") as source, os.fdopen(fd, "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        _SPOOLED[str(path)] = Path(copy)
    return _SPOOLED[str(path)]


@atexit.register
def _remove_spooled() -> None:
    for copy in _SPOOLED.values():
        copy.unlink(missing_ok=True)


def is_readable_file(path) -> bool:
    """Whether ``path`` is a file or a pipe/device that can be read as one (not a folder, not missing)."""
    try:
        return not stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def read_json(path) -> object:
    path = Path(path)
    source = readable(path)
    try:
        with open(source, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path) from None
    except RecursionError:  # json's decoder recurses per nesting level
        raise DataError("invalid JSON: nested too deeply", path) from None


def read_text_lines(path, line_ends_only: bool = False) -> list[str]:
    """The lines of a UTF-8 text file (synonym lists, word lists, MME's txt files).

    ``line_ends_only`` splits as Python's ``readlines()`` does (\\n, \\r\\n, \\r), not also on the other
    Unicode separators (U+2028, U+0085, form feed); the text after a last line end is a last, empty line.
    """
    path = Path(path)
    try:
        text = readable(path).read_text(encoding="utf-8")  # universal newlines: \r\n and \r read as \n
        return text.split("\n") if line_ends_only else text.splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", path) from None


def iter_jsonl(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-empty line; each record must be a JSON object."""
    path = Path(path)
    with open(readable(path), "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                message = f"invalid JSONL record: {e}"
                if not skip_invalid:
                    raise DataError(message, path, line_no) from None
                if skips is not None:
                    skips.add(f"{path}:{line_no}: {message}")
                continue
            yield line_no, record


def read_jsonl(path, **kwargs) -> list[dict]:
    return [record for _, record in iter_jsonl(path, **kwargs)]


def read_records(path, *, streaming: bool = False, **kwargs) -> list[tuple[int, dict]]:
    """Read a JSON list of objects or a JSONL file (by content, not extension) as ``(line, record)``.

    For a JSON list, the 'line' is the 1-based index of the item, which is what a user can find.
    Some published files (POPE's caption data) are concatenated JSON objects; those read as JSONL.
    A Hugging Face dataset gives its rows, numbered from 1; with ``streaming`` as an iterator that reads
    them lazily (``tether.core.hf_dataset.iter_dataset_rows``), else as a list.
    """
    if is_dataset_source(path):  # a Hugging Face dataset: its rows as records, row numbers as lines
        return (
            iter_dataset_rows(path, streaming=True, **kwargs) if streaming else dataset_rows(path, **kwargs)
        )
    path = Path(path)
    with open(readable(path), "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"["):
        data = read_json(path)
        out = []
        for i, item in enumerate(data, start=1):
            if not isinstance(item, dict):
                if kwargs.get("skip_invalid"):
                    if kwargs.get("skips") is not None:
                        kwargs["skips"].add(f"{path}: item {i}: not a JSON object")
                    continue
                raise DataError(f"item {i} is not a JSON object", path)
            out.append((i, item))
        return out
    return list(iter_jsonl(path, **kwargs))


def append_jsonl(path, record: dict) -> None:
    """Append one record and flush it to disk, so a killed run loses at most the record in flight."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path, records) -> None:
    """Write a whole JSONL file at once and atomically (``append_jsonl`` fsyncs per record: for logs)."""
    write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_json(path, obj, indent: int = 2) -> None:
    """Write atomically: a reader never sees a half-written results file."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def is_special_file(path) -> bool:
    """Whether ``path`` (followed through symlinks) is something other than a regular file or folder: a
    character device (``/dev/stdout``, ``/dev/null``), a pipe or a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def is_stream(path) -> bool:
    """Whether an output path is a stream to write into as it is, never replaced and with no files beside
    it: a device, a pipe, or anything under /dev or /proc (``/dev/stdout`` redirected to a file)."""
    return is_special_file(path) or str(path).startswith(("/dev/", "/proc/"))


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it) where ``path`` is, or will
    be, a regular file. A symlink is written through: its target is replaced and the link stays. A device
    or a pipe (``--out /dev/stdout``) is written directly, since renaming over it would replace it; so is
    anything under /dev or /proc (``/dev/stdout`` redirected to a file is the shell's open file)."""
    real = Path(os.path.realpath(path))
    if is_stream(path) or is_stream(real):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    path = real
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def require_fields(record: dict, fields: dict[str, type | tuple], path, line: int) -> None:
    """Check that ``record`` has each field with the given type(s); raise a DataError naming file:line."""
    for name, kind in fields.items():
        if name not in record:
            raise DataError(f"missing field '{name}'", path, line)
        if not isinstance(record[name], kind) or _is_unwanted_bool(record[name], kind):
            got = type(record[name]).__name__
            raise DataError(f"field '{name}' has type {got}, expected {_type_name(kind)}", path, line)


def _is_unwanted_bool(value, kind) -> bool:
    """JSON's true/false are Python ints; they count as int only where bool itself is asked for."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, bool) and bool not in kinds


def _type_name(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def resolve_under(root, relative: str, *, path=None, line: int | None = None) -> Path:
    """Resolve ``relative`` inside ``root``; refuse paths that escape it (``../``, absolute, symlinks out)."""
    root = Path(root).resolve()
    if not isinstance(relative, str) or "\x00" in relative:
        raise DataError(f"path {relative!r} is not a file name", path, line)
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise DataError(f"path '{relative}' escapes the data root {root}", path, line)
    return candidate


def require_image(images_root, relative: str, path, line: int | None) -> None:
    """A record's image must exist under the images root: else a ``DataError`` naming the data file and line
    (found when the data is read, not at the batch that needs it, so ``skip_invalid`` can drop the record).
    An image embedded in a dataset row exists with its row."""
    if isinstance(relative, str) and relative.startswith("embedded://"):  # tether.core.hf_dataset.EMBEDDED
        return
    if not resolve_under(images_root, relative, path=path, line=line).is_file():
        raise DataError(f"image '{relative}' not found under {images_root}", path, line)


def parse_records(
    path, parse, *, skip_invalid: bool = False, skips: SkipLog | None = None, images=None, streaming=False
) -> list:
    """``[parse(record, path, line) for each record of path]``; a DataError from ``parse`` stops the load,
    or with ``skip_invalid`` is counted in ``skips`` and the record dropped. ``parse`` may return a list
    (one file record giving several items, e.g. a multi-turn conversation). With ``images`` (a root
    folder), each item's ``image`` must exist under it (``require_image``). ``streaming``: a Hugging Face
    dataset's rows are read lazily, one at a time (``read_records``)."""
    out = []
    for line, raw in read_records(path, skip_invalid=skip_invalid, skips=skips, streaming=streaming):
        try:
            parsed = parse(raw, path, line)
            if images is not None:
                for item in parsed if isinstance(parsed, list) else [parsed]:
                    if isinstance(getattr(item, "image", None), str):
                        require_image(images, item.image, path, line)
        except DataError as e:
            skip_or_raise(e, skip_invalid, skips)
            continue
        if isinstance(parsed, list):
            out.extend(parsed)
        else:
            out.append(parsed)
    return out

def file_sha256(path) -> str | None:
    """The sha256 of a file's bytes (a pipe is read once), None for a folder or no path."""
    if path is None:
        return None
    if not is_readable_file(path):
        return None  # a folder (MME layouts) has no single digest
    digest = hashlib.sha256()
    with open(readable(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

