"""Property tests of tether.core.io on arbitrary bytes: clean errors naming file:line, honest skip counts."""

import json
import tempfile
from pathlib import Path

import pytest
from fuzz_strategies import check_clean_failure, damaged_file, json_values
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.errors import DataError
from tether.core.io import (
    SkipLog,
    iter_jsonl,
    parse_records,
    read_json,
    read_records,
    require_fields,
    resolve_under,
)

FUZZ = settings(max_examples=50, deadline=None)
lines = st.lists(st.binary(max_size=30) | json_values.map(lambda v: json.dumps(v).encode()), max_size=8)


def write(folder: str, data: bytes, name: str = "data.jsonl") -> Path:
    path = Path(folder) / name
    path.write_bytes(data)
    return path


@FUZZ
@given(lines)
def test_iter_jsonl_errors_name_the_line_and_skips_add_up(raw_lines):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, b"\n".join(line.replace(b"\n", b" ") for line in raw_lines))
        non_empty = sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        try:
            kept = list(iter_jsonl(path))
        except DataError as e:
            assert str(e).startswith(f"{path}:") and e.line is not None
        else:
            assert len(kept) == non_empty
        skips = SkipLog()
        kept = list(iter_jsonl(path, skip_invalid=True, skips=skips))
        assert len(kept) + skips.skipped == non_empty
        assert all(isinstance(record, dict) for _, record in kept)


@FUZZ
@given(st.binary(max_size=200) | damaged_file([{"a": 1}]).map(lambda f: f[0]))
def test_read_records_and_read_json_fail_cleanly(data):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, data, "data.json")
        records = check_clean_failure(lambda: read_records(path), path)
        if records is not None:
            assert all(isinstance(r, dict) and isinstance(n, int) for n, r in records)
        check_clean_failure(lambda: read_json(path), path)
        skips = SkipLog()
        check_clean_failure(lambda: read_records(path, skip_invalid=True, skips=skips), path)


@FUZZ
@given(st.lists(json_values, max_size=6), st.sampled_from(["jsonl", "json"]))
def test_parse_records_skip_counts_add_up(values, layout):
    """Every record is either kept or skipped: a parser refusing non-int 'n' sees each record once."""

    def parse(record, path, line):
        require_fields(record, {"n": int}, path, line)
        return record["n"]

    records = [{"n": v} for v in values]
    with tempfile.TemporaryDirectory() as folder:
        if layout == "json":
            path = write(folder, json.dumps(records).encode(), "data.json")
        else:
            path = write(folder, "".join(json.dumps(r) + "\n" for r in records).encode())
        skips = SkipLog()
        kept = parse_records(path, parse, skip_invalid=True, skips=skips)
        assert len(kept) + skips.skipped == len(records)
        assert kept == [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def test_deeply_nested_json_is_a_data_error(tmp_path):
    for name, data in (("deep.json", "[" * 100_000), ("deep.jsonl", '{"a": ' + "[" * 100_000 + "\n")):
        path = tmp_path / name
        path.write_text(data)
        with pytest.raises(DataError, match=str(path)):
            read_records(path)
        with pytest.raises(DataError, match=str(path)):
            read_json(path)


@FUZZ
@given(st.text(max_size=30) | st.sampled_from(["../x", "a/../../x", "/etc/passwd", "a\x00b", "", ".", "~/x"]))
def test_resolve_under_stays_inside_the_root_or_refuses(relative):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder).resolve()
        try:
            resolved = resolve_under(root, relative, path="records.jsonl", line=3)
        except DataError as e:
            assert str(e).startswith("records.jsonl:3: ")
        else:
            assert resolved == root or root in resolved.parents


def test_resolve_under_refuses_escapes_and_symlinks_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    for relative in ("../x.png", "a/../../x.png", "/etc/passwd", "out/x.png", "a\x00.png"):
        with pytest.raises(DataError, match="records.jsonl:7: "):
            resolve_under(root, relative, path="records.jsonl", line=7)
    assert resolve_under(root, "a/../b.png") == (root / "b.png").resolve()
