"""Hypothesis strategies for malformed data files, and the property every loader must keep.

A generated file starts from valid template records (the shape of the real benchmark or dataset files) and
damages them: fields deleted, retyped, emptied, pointed outside the data root, ids repeated, garbage lines
between records, the file cut at a random byte. Loaders must then either succeed or raise a ``TetherError``
whose message names the file — never another exception type.
"""

import json
from pathlib import Path

from hypothesis import strategies as st

from tether.core.errors import TetherError

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# values that have broken real loaders: empty, blank, path escapes, wrong labels, NUL bytes, huge numbers
awkward_values = st.sampled_from(
    [
        "",
        " ",
        "../../etc/passwd",
        "/etc/passwd",
        "maybe",
        "YES",
        "\x00",
        "a\x00b",
        "<image>",
        10**30,
        -1,
        1.5,
        [],
        {},
    ]
)


@st.composite
def damaged_record(draw, template: dict, extra_keys=()) -> dict:
    """``template`` with each field kept, deleted or replaced by an arbitrary or awkward value."""
    record = {}
    for key, value in template.items():
        action = draw(st.sampled_from(["keep", "keep", "keep", "delete", "retype", "awkward"]))
        if action == "keep":
            record[key] = value
        elif action == "retype":
            record[key] = draw(json_values)
        elif action == "awkward":
            record[key] = draw(awkward_values)
    for key in extra_keys:
        if draw(st.booleans()):
            record[key] = draw(json_values | awkward_values)
    return record


@st.composite
def damaged_file(draw, templates: list[dict], extra_keys=()) -> tuple[bytes, str]:
    """Bytes of a JSONL file or JSON list of damaged records, plus which layout it is ('jsonl'/'json')."""
    records = []
    for _ in range(draw(st.integers(1, 5))):
        template = draw(st.sampled_from(templates))
        if draw(st.booleans()):
            records.append(dict(template))  # some records stay valid
        else:
            records.append(draw(damaged_record(template, extra_keys)))
    if len(records) > 1 and draw(st.booleans()):
        records.append(dict(records[0]))  # a duplicated record (same id)
    layout = draw(st.sampled_from(["jsonl", "json"]))
    if layout == "json":
        items = [r if draw(st.integers(0, 9)) else draw(json_values) for r in records]
        data = json.dumps(items).encode()
    else:
        lines = [json.dumps(r).encode() for r in records]
        if draw(st.booleans()):
            position = draw(st.integers(0, len(lines)))
            lines.insert(
                position,
                draw(st.binary(max_size=20) | st.sampled_from([b"[1, 2]", b'"x"', b"{", b"\xff\xfe"])),
            )
        data = b"\n".join(lines) + b"\n"
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # a file cut short, e.g. by a full disk
    return data, layout


def check_clean_failure(call, *named_paths: Path):
    """Run ``call()``; any exception must be a TetherError naming one of ``named_paths``. Returns the result
    or None when it failed cleanly."""
    try:
        return call()
    except TetherError as e:
        message = str(e)
        assert any(str(p) in message for p in named_paths), f"error does not name the file: {message}"
        assert "\n" not in message.strip(), f"error is not one line: {message!r}"
        return None
