"""Files tether re-reads on a rerun (stage markers, the DPO reference cache, checkpoints, the pair pipeline's
progress): damage is detected and reported, never silently used. samples.jsonl and the judge cache have
their own tests (tests/eval/test_run_benchmark.py, tests/eval/judges)."""

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from tether.core.errors import TetherError
from tether.data.pairs import _finished_images
from tether.methods import dpo_reference
from tether.methods.trainer import TRAINABLE_WEIGHTS, load_trainable_state
from tether.study.stages import Stages, read_marker


@pytest.mark.parametrize("content", ['{"fingerprint": "ab', "[1, 2]", "\xff"])
def test_damaged_stage_marker_reruns_the_stage(tmp_path, caplog, content):
    stages = Stages(tmp_path)
    calls = []
    assert stages.run("align", ["x"], lambda folder: calls.append(1) or "result-1") == "result-1"
    assert stages.run("align", ["x"], lambda folder: calls.append(2) or "result-2") == "result-1"  # cached
    (tmp_path / "align" / "stage.json").write_bytes(content.encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        assert stages.run("align", ["x"], lambda folder: calls.append(3) or "result-3") == "result-3"
    assert calls == [1, 3]
    assert "stage.json: damaged stage marker" in caplog.text
    assert read_marker(tmp_path / "align" / "stage.json")["result"] == "result-3"
    assert read_marker(tmp_path / "missing.json") == {}


def test_damaged_reference_cache_is_recomputed(tmp_path, monkeypatch, caplog):
    computed = []

    def compute(vlm, pairs, collator, batch_size, progress=False):
        computed.append(len(pairs))
        return torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -4.0])

    monkeypatch.setattr(dpo_reference, "compute_reference_logprobs", compute)
    pairs = ["p1", "p2"]

    def cached():
        return dpo_reference.cached_reference_logprobs(None, pairs, None, 2, tmp_path, "f" * 64)

    chosen, _, path, hit = cached()
    assert not hit and computed == [2]
    assert cached()[3] and computed == [2]  # a good cache is used
    for damage in (b"garbage" * 3, None):
        if damage is None:  # a valid file for other pairs
            save_file({"chosen": torch.zeros(3), "rejected": torch.zeros(3)}, str(path))
        else:
            path.write_bytes(damage)
        with caplog.at_level(logging.WARNING):
            again, _, _, hit = cached()
        assert not hit and torch.equal(again, chosen)
    assert computed == [2, 2, 2]
    assert "damaged reference cache" in caplog.text and "does not match these 2 pairs" in caplog.text


def test_damaged_checkpoint_weights_name_the_file(tmp_path):
    path = tmp_path / TRAINABLE_WEIGHTS
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(TetherError, match=f"{path}: damaged checkpoint weights"):
        load_trainable_state(torch.nn.Linear(2, 2), path)
    save_file({"other.weight": torch.zeros(2)}, str(path))
    with pytest.raises(TetherError, match="parameters not in this model"):
        load_trainable_state(torch.nn.Linear(2, 2), path)


def test_pair_pipeline_progress_with_damaged_lines(tmp_path, caplog):
    out = tmp_path / "pairs.jsonl"
    out.with_suffix(".progress.jsonl").write_text(
        json.dumps({"image_id": "a", "pairs": 1}) + "\n[1, 2]\n" + '{"image_id": "b"' + "\n"
    )
    out.write_text(
        json.dumps({"image_id": "a", "chosen": "x"}) + "\n"
        + json.dumps({"image_id": "b", "chosen": "y"}) + "\n"  # image b never finished: its pairs go
        + '"just a string"\n{"image_id": "a", "cho'
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert _finished_images(out) == {"a"}
    assert [json.loads(line)["image_id"] for line in out.read_text().splitlines()] == ["a"]
    assert caplog.text.count("torn progress line ignored") == 2
    assert caplog.text.count("damaged pair record dropped") == 2
