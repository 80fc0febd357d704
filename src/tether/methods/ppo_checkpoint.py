"""PPO's resumable state: trainable weights and optimizer state as safetensors, step, KL coefficient, optimizer
settings and history as JSON (no pickle). A checkpoint folder holds ``PPO_STATE`` once it is complete."""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.core.io import read_json, write_json
from tether.methods.trainer import TRAINABLE_WEIGHTS, load_trainable_state, trainable_state

OPTIMIZER_WEIGHTS = "optimizer.safetensors"
PPO_STATE = "ppo_state.json"


def save_ppo_checkpoint(
    folder: Path, module: torch.nn.Module, optimizer, kl_coef: float, step: int, history: list[dict]
) -> None:
    """Write ``module``'s trainable parameters, ``optimizer``'s state and the run's progress to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(module), folder / TRAINABLE_WEIGHTS)
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.detach().cpu().contiguous()
        for index, values in state["state"].items()
        for key, value in values.items()
    }
    save_file(tensors, folder / OPTIMIZER_WEIGHTS)
    write_json(
        folder / PPO_STATE,
        {"step": step, "kl_coef": kl_coef, "param_groups": state["param_groups"], "history": history},
    )


def load_ppo_checkpoint(folder: Path, module: torch.nn.Module, optimizer) -> tuple[int, float, list[dict]]:
    """Restore ``module`` and ``optimizer`` from ``folder``; returns its step, KL coefficient and history."""
    load_trainable_state(module, folder / TRAINABLE_WEIGHTS)
    info = read_json(folder / PPO_STATE)
    per_param: dict[int, dict] = {}
    for name, value in load_file(str(folder / OPTIMIZER_WEIGHTS)).items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": info["param_groups"]})
    return info["step"], info["kl_coef"], info["history"]
