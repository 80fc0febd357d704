"""Issue 23, problem 3: rerunning a training command into its output_dir.

A finished run is never trained further (DPO's weights stay as they are, no step past max_steps), a changed
config is refused naming the change and leaves run.json as it was, --overwrite starts over, and a run
stopped after its last checkpoint is finished from that checkpoint without another step.
"""

import json
import shutil

import pytest
from safetensors.torch import load_file

from tether.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    words = "red blue green square circle triangle left of a what color is the shape".split()
    return build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("tiny"), words)


def dpo(checkpoint, pair_data, out, *extra) -> int:
    path, images = pair_data
    settings = [
        f"model.path={checkpoint}", f"data.train=[{path}]", f"data.images={images}", f"train.output_dir={out}",
        # 6 pairs in batches of 4: max_steps=3 ends in the middle of the second epoch
        "train.max_steps=3", "train.save_steps=3", "train.per_device_train_batch_size=4",
        "train.learning_rate=1e-2", "train.progress_bar=false",
    ]  # fmt: skip
    return main(["train", "dpo", *[x for s in settings for x in ("--set", s)], *extra])


def weights(out):
    return load_file(out / "model" / "model.safetensors")


def test_a_finished_run_is_not_trained_again(checkpoint, pair_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert dpo(checkpoint, pair_data, out) == 0
    first, record = weights(out), (out / "run.json").read_bytes()
    assert json.loads(record)["global_step"] == 3

    assert dpo(checkpoint, pair_data, out) == 0  # the same inputs: nothing to do
    assert not (out / "checkpoint-4").exists() and (out / "run.json").read_bytes() == record
    for name, value in weights(out).items():
        assert value.equal(first[name]), name

    capsys.readouterr()
    assert dpo(checkpoint, pair_data, out, "--set", "train.learning_rate=5e-3") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(
        f"tether: error: {out}: was made with other config.train.learning_rate (0.01 -> 0.005)"
    )
    assert "--overwrite" in error and (out / "run.json").read_bytes() == record

    assert dpo(checkpoint, pair_data, out, "--set", "train.learning_rate=5e-3", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["config"]["train"]["learning_rate"] == 5e-3
    assert any(not value.equal(first[name]) for name, value in weights(out).items())


def test_a_run_stopped_after_its_last_checkpoint_takes_no_extra_step(checkpoint, pair_data, tmp_path):
    out = tmp_path / "run"
    assert dpo(checkpoint, pair_data, out) == 0
    trained = weights(out)
    # as if killed after saving checkpoint-3 but before the export
    marker = json.loads((out / "fingerprint.json").read_text())
    (out / "fingerprint.json").write_text(json.dumps({**marker, "finished": False}))
    (out / "run.json").unlink()
    shutil.rmtree(out / "model")

    assert dpo(checkpoint, pair_data, out) == 0
    assert json.loads((out / "run.json").read_text())["global_step"] == 3
    assert not (out / "checkpoint-4").exists()
    exported = weights(out)
    for name, value in trained.items():
        assert value.equal(exported[name]), name
    assert json.loads((out / "fingerprint.json").read_text())["finished"] is True


def test_a_folder_from_an_unrecorded_run_is_refused(checkpoint, pair_data, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    assert dpo(checkpoint, pair_data, out) == 2
    assert "without a record of what made it (checkpoint-2)" in capsys.readouterr().err


def test_only_the_main_rank_writes_the_reference_cache(tmp_path, monkeypatch):
    """Every rank computes the reference log-probs; a non-main rank writing the cache could put a file in the
    output folder before the main rank checked its record, which then refused the run as a stranger's."""
    import torch

    from tether.methods import dpo_reference

    def compute(vlm, pairs, collator, batch_size, progress=False):
        return torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -4.0])

    monkeypatch.setattr(dpo_reference, "compute_reference_logprobs", compute)
    monkeypatch.setenv("RANK", "1")
    chosen, _, path, hit = dpo_reference.cached_reference_logprobs(None, ["a", "b"], None, 2, tmp_path, "f" * 64)
    assert not hit and chosen.tolist() == [-1.0, -2.0] and not any(tmp_path.iterdir())
    monkeypatch.setenv("RANK", "0")
    dpo_reference.cached_reference_logprobs(None, ["a", "b"], None, 2, tmp_path, "f" * 64)
    assert path.is_file()
