"""DeepSpeed for real: two CPU processes (DeepSpeed's CPU accelerator, gloo) under the shipped accelerate
configs train SFT, DPO and HACL to the weights of one plain process with the same global batch.

ZeRO-2 (configs/accelerate/zero2.yaml) shards optimizer state and gradients; ZeRO-3
(configs/accelerate/zero3.yaml, settings in configs/deepspeed/zero3.json) also shards the parameters, so
the checkpoint's trainable weights are gathered from both ranks and the exported model is whole only
because every rank gathers after training. The data make the per-process mean losses average to the global
mean exactly (see test_ddp_methods.py), so the runs differ only in the order of floating-point sums
(all-reduce / reduce-scatter against one process's sum): about 1e-7 here, well inside atol 1e-5 /
rtol 1e-4 (the DDP tests' tolerance), while one learning-rate step moves weights by ~1e-3.

`deepspeed` must be importable: these tests fail (not skip) without it; `pip install -e ".[dev]"` brings it.
"""

import pytest
import torch
from ddp_helpers import (
    COLOURS,
    assert_same_trained_weights,
    captions_and_negatives,
    images,
    preference_pairs,
    train,
    write_jsonl,
)
from safetensors.torch import load_file

ZERO = {
    # the shipped files, run as a user would; bf16 off so the one-process fp32 run is the reference
    "zero2": ["--config_file", "configs/accelerate/zero2.yaml", "--mixed_precision", "no"],
    "zero3": ["--config_file", "configs/accelerate/zero3.yaml"],
}
COMMON = [
    "train.learning_rate=1e-3",
    "train.progress_bar=false",
    "train.lr_scheduler_type=constant",
    "train.max_steps=2",
    "train.save_steps=2",
]


@pytest.fixture(scope="module")
def recipes(checkpoint, tmp_path_factory):
    """``--set`` settings of each method (without the per-device batch)."""
    root = tmp_path_factory.mktemp("data")
    folder = images(root)
    answers = [{"image": f"{i}.png", "question": "what is it ?", "answer": COLOURS[i % 4]} for i in range(8)]
    pairs = preference_pairs()
    captions, negatives = captions_and_negatives()
    base = [f"model.path={checkpoint}", f"data.images={folder}", *COMMON]
    return {
        "sft": base + [f"data.train=[{write_jsonl(root / 'answers.jsonl', answers)}]"],
        "dpo": base
        + ["model.freeze_vision=true", f"data.train=[{write_jsonl(root / 'pairs.jsonl', pairs)}]"],
        "hacl": base
        + [
            "model.freeze_llm=true",
            "model.freeze_vision=true",
            "model.freeze_projector=false",
            f"data.train=[{write_jsonl(root / 'captions.jsonl', captions)}]",
            f"data.negatives=[{write_jsonl(root / 'negatives.jsonl', negatives)}]",
            "hacl.gather_across_processes=true",
        ],
    }


@pytest.fixture(scope="module")
def one_process(recipes, tmp_path_factory):
    """The reference: each method trained by one plain process with the whole global batch (4)."""
    runs = {}

    def run(method):
        if method not in runs:
            out = tmp_path_factory.mktemp(f"one_{method}")
            train(method, recipes[method] + ["train.per_device_train_batch_size=4"], out, processes=1)
            runs[method] = out
        return runs[method]

    return run


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
@pytest.mark.parametrize("method", ["sft", "dpo", "hacl"])
def test_deepspeed_two_processes_equal_one(method, stage, recipes, one_process, initial, tmp_path):
    import deepspeed  # noqa: F401  (fails, never skips, where the dev extra was not installed)

    one = one_process(method)
    settings = recipes[method] + ["train.per_device_train_batch_size=2"]
    run = train(method, settings, tmp_path / stage, processes=2, accelerate=ZERO[stage])
    assert run["world_size"] == 2
    # DeepSpeed really ran: its checkpoint holds one optimizer-state shard per rank
    shards = sorted(p.name for p in (tmp_path / stage / "checkpoint-2").glob("global_step2/*optim_states.pt"))
    assert len(shards) == 2, shards
    assert_same_trained_weights(one, tmp_path / stage, 2, initial)
    # the exported model is whole (under ZeRO-3 each rank held a shard: every rank gathers before export)
    a = load_file(one / "model" / "model.safetensors")
    b = load_file(tmp_path / stage / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)
