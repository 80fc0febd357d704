"""JSON/JSONL reading and appending with errors that name the file and line.

Every loader in tether reads through these functions, so that bad input is reported the same way
everywhere: ``path:line: what is wrong``, or, with ``skip_invalid=True``, skipped and counted.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import DataError


@dataclass
class SkipLog:
    """Counts records skipped under ``skip_invalid`` and keeps the first few reasons for the report."""

    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 20:
            self.reasons.append(reason)


def read_json(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path) from None
    except RecursionError:  # json's decoder recurses per nesting level
        raise DataError("invalid JSON: nested too deeply", path) from None


def read_text_lines(path) -> list[str]:
    """The lines of a UTF-8 text file (synonym lists, word lists, MME's txt files)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", path) from None


def iter_jsonl(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-empty line; each record must be a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    with open(path, "rb") as f:
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


def read_records(path, **kwargs) -> list[tuple[int, dict]]:
    """Read a JSON list of objects or a JSONL file (by content, not extension) as ``(line, record)``.

    For a JSON list, the 'line' is the 1-based index of the item, which is what a user can find.
    Some published files (POPE's caption data) are concatenated JSON objects; those read as JSONL.
    """
    from tether.data.hf_dataset import dataset_rows, is_dataset_source

    if is_dataset_source(path):  # a Hugging Face dataset: its rows as records, row numbers as lines
        return dataset_rows(path)
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    with open(path, "rb") as f:
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    os.replace(tmp, path)


def write_json(path, obj, indent: int = 2) -> None:
    """Write atomically: a reader never sees a half-written results file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")
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


def parse_records(path, parse, *, skip_invalid: bool = False, skips: SkipLog | None = None) -> list:
    """``[parse(record, path, line) for each record of path]``; a DataError from ``parse`` stops the load,
    or with ``skip_invalid`` is counted in ``skips`` and the record dropped. ``parse`` may return a list
    (one file record giving several items, e.g. a multi-turn conversation)."""
    out = []
    for line, raw in read_records(path, skip_invalid=skip_invalid, skips=skips):
        try:
            parsed = parse(raw, path, line)
        except DataError as e:
            if not skip_invalid:
                raise
            if skips is not None:
                skips.add(str(e))
            continue
        if isinstance(parsed, list):
            out.extend(parsed)
        else:
            out.append(parsed)
    return out
