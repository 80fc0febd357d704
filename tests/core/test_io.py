import json
import stat

import pytest

from tether.core.errors import DataError
from tether.core.io import SkipLog, read_jsonl, read_records, resolve_under


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


# ---- issue 23, problem 7: outputs through symlinks and into streams, inputs from pipes --------------------


def _read_fifo_in_background(fifo):
    import threading

    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    return reader, received


def test_writes_go_through_symlinks_and_into_pipes(tmp_path):
    import os

    from tether.core.io import write_json, write_jsonl

    target = tmp_path / "real" / "results.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}

    device = tmp_path / "device.json"  # a character device behind a link: written into, never replaced
    device.symlink_to(os.devnull)
    write_json(device, {"a": 1})
    assert device.is_symlink() and stat.S_ISCHR(os.stat(os.devnull).st_mode)

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader, received = _read_fifo_in_background(fifo)
    write_jsonl(fifo, [{"x": 1}, {"x": 2}])
    reader.join(timeout=60)
    assert received == [b'{"x": 1}\n{"x": 2}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not (tmp_path / "fifo.tmp").exists()


def test_cli_out_to_a_symlink_and_a_pipe(shared_data, tmp_path, capsys):
    import os

    from tether.cli import main

    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"image": "1.jpg", "caption": "A dog sleeps on a couch."}) + "\n")
    synonyms = shared_data / "chair" / "synonyms.txt"
    target = tmp_path / "real.jsonl"
    link = tmp_path / "negatives.jsonl"
    link.symlink_to(target)
    assert main(["data", "negatives", str(captions), "--out", str(link), "--synonyms", str(synonyms)]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["caption"] == "A dog sleeps on a couch."

    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    reader, received = _read_fifo_in_background(fifo)
    assert main(["data", "negatives", str(captions), "--out", str(fifo), "--synonyms", str(synonyms)]) == 0
    reader.join(timeout=60)
    assert json.loads(received[0])["image"] == "1.jpg"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == [
        "captions.jsonl", "negatives.jsonl", "negatives.run.json", "real.jsonl", "stream"
    ]  # fmt: skip


def test_inputs_from_process_substitution(tmp_path, capsys):
    """`--answers <(...)` hands the command /dev/fd/N, a pipe that can be read once."""
    import os

    from tether.cli import main

    questions = tmp_path / "coco_pope_random.jsonl"
    rows = [
        {"question_id": i, "image": f"{i}.jpg", "text": "Is there a cat?", "label": "yes"} for i in (1, 2)
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"question_id": 1, "text": "Yes"}\n{"question_id": 2, "text": "No"}\n')
    os.close(write_end)
    try:
        answers = f"/dev/fd/{read_end}"
        assert (
            main(["eval", "pope", "score", "--questions", str(questions), "--answers", answers, "--json"])
            == 0
        )
    finally:
        os.close(read_end)
    assert json.loads(capsys.readouterr().out)["accuracy"] == 0.5
