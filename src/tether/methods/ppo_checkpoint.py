"""PPO's resumable state: trainable weights and optimizer state as safetensors, step, KL coefficient, optimizer
settings and history as JSON (no pickle). A checkpoint folder holds ``PPO_STATE`` once it is complete."""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.core.errors import TetherError
from tether.core.io import read_json, write_json
from tether.methods.trainer import TRAINABLE_WEIGHTS, load_trainable_state, trainable_state

OPTIMIZER_WEIGHTS = "optimizer.safetensors"
PPO_STATE = "ppo_state.json"


def save_ppo_checkpoint(
    folder: Path, accelerator, module: torch.nn.Module, optimizer, kl_coef: float, step: int, history: list[dict]
) -> None:
    """Write ``module``'s trainable parameters, ``optimizer``'s state and the run's progress to ``folder``.

    Every rank calls it: under ZeRO-3 the weights are gathered from all ranks; the main one writes. Under
    DeepSpeed the optimizer state stays in DeepSpeed's per-rank shards, which are not written (they would be
    pickles): such a checkpoint holds the weights, and resuming from it is refused."""
    weights = trainable_state(module)
    if not accelerator.is_main_process:
        return
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, folder / TRAINABLE_WEIGHTS)
    param_groups = None
    if accelerator.state.deepspeed_plugin is None:
        state = optimizer.state_dict()
        tensors = {
            f"{index}.{key}": value.detach().cpu().contiguous()
            for index, values in state["state"].items()
            for key, value in values.items()
        }
        save_file(tensors, folder / OPTIMIZER_WEIGHTS)
        param_groups = state["param_groups"]
    write_json(
        folder / PPO_STATE,
        {"step": step, "kl_coef": kl_coef, "param_groups": param_groups, "history": history},
    )


def load_ppo_checkpoint(folder: Path, module: torch.nn.Module, optimizer) -> tuple[int, float, list[dict]]:
    """Restore ``module`` and ``optimizer`` from ``folder``; returns its step, KL coefficient and history."""
    info = read_json(folder / PPO_STATE)
    if info.get("param_groups") is None:
        raise TetherError(
            f"{folder}: written under DeepSpeed, without optimizer state: PPO cannot resume from it; "
            "start again with --overwrite (or train.resume=false)"
        )
    load_trainable_state(module, folder / TRAINABLE_WEIGHTS)
    per_param: dict[int, dict] = {}
    for name, value in load_file(str(folder / OPTIMIZER_WEIGHTS)).items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": info["param_groups"]})
    return info["step"], info["kl_coef"], info["history"]
