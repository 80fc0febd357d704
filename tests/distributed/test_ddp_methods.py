"""DPO and HACL with two CPU processes (torchrun, gloo) train to the weights of one process with the same
global batch. The data make the per-process mean losses average to the global mean exactly: DPO's loss is
a mean over pairs (equal pairs per process); HACL's language loss a mean over caption tokens (every caption
has the same number), and its contrastive terms see the whole global batch (negatives gathered)."""

import pytest
from ddp_helpers import (
    assert_same_trained_weights,
    captions_and_negatives,
    images,
    preference_pairs,
    train,
    write_jsonl,
)

COMMON = ["train.learning_rate=1e-3", "train.progress_bar=false", "train.lr_scheduler_type=constant"]


def test_dpo_two_processes_equal_one(checkpoint, initial, tmp_path):
    folder = images(tmp_path)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs())
    settings = [
        f"model.path={checkpoint}",
        "model.freeze_vision=true",
        f"data.train=[{pairs}]",
        f"data.images={folder}",
        "train.max_steps=2",
        "train.save_steps=2",
        *COMMON,
    ]
    one = train("dpo", settings + ["train.per_device_train_batch_size=4"], tmp_path / "one", processes=1)
    two = train("dpo", settings + ["train.per_device_train_batch_size=2"], tmp_path / "two", processes=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert_same_trained_weights(tmp_path / "one", tmp_path / "two", 2, initial)


def test_hacl_two_processes_equal_one_with_gathered_negatives(checkpoint, initial, tmp_path):
    folder = images(tmp_path)
    captions, negatives = captions_and_negatives()
    settings = [
        f"model.path={checkpoint}",
        "model.freeze_llm=true",
        "model.freeze_vision=true",
        "model.freeze_projector=false",
        f"data.train=[{write_jsonl(tmp_path / 'captions.jsonl', captions)}]",
        f"data.negatives=[{write_jsonl(tmp_path / 'negatives.jsonl', negatives)}]",
        f"data.images={folder}",
        "hacl.gather_across_processes=true",
        "train.max_steps=2",
        "train.save_steps=2",
        *COMMON,
    ]
    one = train("hacl", settings + ["train.per_device_train_batch_size=4"], tmp_path / "one", processes=1)
    two = train("hacl", settings + ["train.per_device_train_batch_size=2"], tmp_path / "two", processes=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert_same_trained_weights(tmp_path / "one", tmp_path / "two", 2, initial)
    # without the gather each process contrasts its own half-batch: a different (smaller-batch) objective
    local = settings + ["hacl.gather_across_processes=false", "train.per_device_train_batch_size=2"]
    train("hacl", local, tmp_path / "local", processes=2)
    with pytest.raises(AssertionError, match="not close"):
        assert_same_trained_weights(tmp_path / "one", tmp_path / "local", 2, initial)
