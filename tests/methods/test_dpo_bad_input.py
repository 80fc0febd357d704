"""Issue 23, problem 5: `train dpo` with a missing image, and the image pattern that rewrites HA-DPO ids."""

import json
import logging

from tether.cli import main


def hadpo_pope(tmp_path, image_ids):
    path = tmp_path / "pope_data.json"
    rows = [
        {"image_id": i, "question": "is there a square ?", "chosen": "yes", "reject": "no", "correct": False}
        for i in image_ids
    ]
    path.write_text(json.dumps(rows))
    return path


def train(tmp_path, data, images, *sets):
    settings = [
        f"data.train=[{data}]", f"data.images={images}", f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=1", "train.per_device_train_batch_size=2", "train.progress_bar=false", *sets,
    ]  # fmt: skip
    return main(["train", "dpo", *[x for s in settings for x in ("--set", s)]])


def test_a_missing_image_is_a_path_line_error_or_skipped_and_counted(
    tiny_checkpoint, pair_data, tmp_path, capsys, caplog
):
    _, images = pair_data  # 0.png ... 5.png
    data = hadpo_pope(tmp_path, [0, 1, 99, 2])
    model = f"model.path={tiny_checkpoint}"
    pattern = "data.image_pattern={image_id}.png"  # no YAML quoting needed

    assert train(tmp_path, data, images, model, pattern) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"tether: error: {data}:3: image '99.png' not found under {images}"

    with caplog.at_level(logging.INFO):
        assert train(tmp_path, data, images, model, pattern, "data.skip_invalid=true") == 0
    assert f"{data}: hadpo_pope image ids become file names by the pattern '{{image_id}}.png'" in caplog.text
    assert f"1 records skipped: {data}:3: image '99.png' not found" in caplog.text
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["pairs"] == 3 and record["skipped"] == 1


def test_the_default_image_pattern_is_said_when_used(tiny_checkpoint, pair_data, tmp_path, capsys, caplog):
    _, images = pair_data
    data = hadpo_pope(tmp_path, [0, 1])
    with caplog.at_level(logging.INFO):
        assert train(tmp_path, data, images, f"model.path={tiny_checkpoint}") == 2
    assert "by the pattern '{image_id}.jpg' (the default; set data.image_pattern to change it)" in caplog.text
    assert f"{data}:1: image '0.jpg' not found under {images}" in capsys.readouterr().err


def test_no_pairs_left_says_what_was_skipped_and_why(tiny_checkpoint, tmp_path, capsys):
    data = tmp_path / "llava_7b_v1_preference.json"
    data.write_text(json.dumps([{"image": "a.png", "conversations": [], "output_1": {"value": "x"},
                                 "output_2": {"value": "y"}, "preference": 1}]))  # fmt: skip
    assert train(tmp_path, data, tmp_path, f"model.path={tiny_checkpoint}", "data.skip_invalid=true") == 2
    error = capsys.readouterr().err
    assert "no preference pairs to train on (1 records skipped: " in error
    assert f"{data}:1: 'conversations' must be a list of turns" in error
