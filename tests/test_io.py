import json

import pytest

from tether.data.io import SkipLog, read_jsonl, read_records, resolve_under
from tether.errors import DataError


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(DataError, match=r"a\.jsonl:3: invalid JSONL"):
        read_jsonl(path)


def test_skip_invalid_counts(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n[1]\nnot json\n{"a": 2}\n')
    skips = SkipLog()
    assert read_jsonl(path, skip_invalid=True, skips=skips) == [{"a": 1}, {"a": 2}]
    assert skips.skipped == 2 and ":2:" in skips.reasons[0] and ":3:" in skips.reasons[1]


def test_read_records_accepts_json_list(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"x": 1}, {"x": 2}]))
    assert read_records(path) == [(1, {"x": 1}), (2, {"x": 2})]


def test_resolve_under_refuses_escape(tmp_path):
    (tmp_path / "img").mkdir()
    assert resolve_under(tmp_path / "img", "a.png") == (tmp_path / "img" / "a.png").resolve()
    with pytest.raises(DataError, match="escapes"):
        resolve_under(tmp_path / "img", "../secret.png")
    with pytest.raises(DataError, match="escapes"):
        resolve_under(tmp_path / "img", "/etc/passwd")
