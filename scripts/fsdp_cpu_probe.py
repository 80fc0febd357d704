"""Can FSDP2 train on two CPU processes (gloo)? Each level of the stack, one small run each.

    PYTHONPATH=src python scripts/fsdp_cpu_probe.py

prints, for each route, what the two ranks really ran (the accelerate mode, the wrapper around the model,
the parameter type) and how far the weights after two steps are from one process with the same global
batch. Re-run it on each accelerate release: tether refuses FSDP on CPUs (``refuse_fsdp_on_cpu``) as long as
the ``launch`` and ``trainer-fsdp`` routes report ``MULTI_CPU`` and ``DistributedDataParallel``.

Routes (each run by two processes; ``torch`` and ``trainer-*`` under torchrun):

- ``torch``: ``torch.distributed.fsdp.fully_shard`` by hand, gloo, a plain loop; counts the collectives.
  Then the same with peft LoRA adapters on both layers (base weights frozen): ``torch-lora``.
- ``launch``: what ``accelerate launch --config_file configs/accelerate/fsdp.yaml`` (two processes, which
  it starts under torch's launcher and marks ``ACCELERATE_USE_FSDP=true``) gives tether's Trainer, which
  asks for ``TrainingArguments(use_cpu=True)`` on CPUs.
- ``launch-cpu``: the same launch with ``--cpu``.
- ``trainer-fsdp``: ``TrainingArguments(use_cpu=True, fsdp=True, fsdp_config={"fsdp_version": 2})``.
- ``trainer-fsdp-no-cpu``: the same without ``use_cpu``.
- ``presharded``: the module sharded with ``fully_shard`` before the Trainer sees it.
- ``forced-state``: the ``trainer-fsdp`` run with accelerate's shared state switched to FSDP by hand after
  the Trainer is built (private attributes; shows what is left once the mode is chosen; not a fix).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

STEPS, GLOBAL_BATCH = 2, 4
REPO = Path(__file__).resolve().parents[1]


class Regression(torch.nn.Module):
    """A method-module stand-in: ``forward(**batch)`` returns ``{"loss": ...}``, as tether's do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = torch.nn.Linear(8, 16)
        self.second = torch.nn.Linear(16, 4)

    def forward(self, x, y):
        return {"loss": ((self.second(torch.relu(self.first(x))) - y) ** 2).mean()}


class Rows(torch.utils.data.Dataset):
    def __init__(self):
        generator = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(16, 8, generator=generator), torch.randn(16, 4, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def full_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: (value.full_tensor() if hasattr(value, "full_tensor") else value).detach().clone()
        for name, value in module.state_dict().items()
    }


COLLECTIVES = ["all_gather_single", "reduce_scatter_single", "all_reduce", "broadcast"]


@contextlib.contextmanager
def count_collectives(counts: dict[str, int]):
    """Count calls of ``torch.distributed.<name>`` for each name of ``counts`` inside the block (FSDP2 looks
    them up on the module at call time)."""
    originals = {name: getattr(dist, name) for name in counts}
    names = list(counts)
    for name in names:
        original = getattr(dist, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(dist, name, counted)
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


def torch_route(processes: int, lora: bool = False) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    module, rows = Regression(), Rows()
    if lora:  # peft LoRA on both layers: frozen base weights and trainable adapters in one FSDP group
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(2)
        module = get_peft_model(module, LoraConfig(r=2, target_modules=["first", "second"], init_lora_weights=False))
        module.forward = module.base_model.model.forward  # the regression takes x, y, not input_ids
    layers = module.base_model.model if lora else module
    report = {}
    rank = 0
    if processes > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        rank = dist.get_rank()
        mesh = init_device_mesh("cpu", (processes,))
        fully_shard(layers.first, mesh=mesh)
        fully_shard(layers.second, mesh=mesh)
        fully_shard(module, mesh=mesh)
        report["collectives"] = dict.fromkeys(COLLECTIVES, 0)
    report["initial"] = full_weights(module)
    trainable = [param for param in module.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    per_rank = GLOBAL_BATCH // processes
    with count_collectives(report.get("collectives", {})):
        for step in range(STEPS):
            first = step * GLOBAL_BATCH + rank * per_rank
            module(**rows[first : first + per_rank])["loss"].backward()
            optimizer.step()
            optimizer.zero_grad()
    report["parameter"] = type(layers.first.weight).__name__
    report["weights"] = full_weights(module)
    return report


def trainer_route(route: str, processes: int) -> dict:
    from transformers import Trainer, TrainingArguments

    module = Regression()
    arguments = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=STEPS,
        per_device_train_batch_size=GLOBAL_BATCH // processes,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=route != "trainer-fsdp-no-cpu",
    )
    if route.startswith("trainer-fsdp") or route == "forced-state":
        arguments.update(fsdp=True, fsdp_config={"fsdp_version": 2})
    if route == "presharded":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        dist.init_process_group("gloo")
        fully_shard(module, mesh=init_device_mesh("cpu", (processes,)))
    initial = full_weights(module)
    trainer = Trainer(model=module, args=TrainingArguments(**arguments), train_dataset=Rows())
    report = {
        "initial": initial,
        "accelerate_mode": str(trainer.accelerator.distributed_type),
        "ACCELERATE_USE_FSDP": os.environ.get("ACCELERATE_USE_FSDP", ""),
    }
    if route == "forced-state":
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        trainer.accelerator.state.distributed_type = DistributedType.FSDP
        trainer.accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
        trainer.is_fsdp_enabled = True
    trainer.train()
    report["world_size"] = trainer.args.world_size  # 1 where the launcher started one process
    report["wrapper"] = type(trainer.model_wrapped).__name__
    report["parameter"] = type(module.first.weight).__name__
    report["weights"] = full_weights(module)
    return report


def run_route(route: str, out: Path) -> None:
    """One process of a route: write rank 0's report (or its error) to ``out``."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        if route == "torch":  # one launch for both: starting processes is most of the time here
            report = {"torch": torch_route(processes), "torch-lora": torch_route(processes, lora=True)}
        else:
            report = trainer_route(route, processes)
    except Exception as error:  # the probe reports a failure: it is one of its answers
        report = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        frame = traceback.extract_tb(error.__traceback__)[-1]
        report["at"] = f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(report, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(route: str, processes: int, out: Path) -> str:
    """Run ``route`` in ``processes`` processes; rank 0's report lands in ``out``. Returns "" or why not."""
    script = [str(Path(__file__).resolve()), route, str(out)]
    if processes == 1:
        command = [sys.executable, *script]
    elif route.startswith("launch"):
        command = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(REPO / "configs/accelerate/fsdp.yaml"),
            *(["--cpu"] if route == "launch-cpu" else []),
            "--num_processes", str(processes), "--main_process_port", str(free_port()),
            "--mixed_precision", "no", *script,
        ]  # fmt: skip
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        command += ["--master_port", str(free_port()), *script]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    return "" if out.exists() else f"no report (exit {result.returncode}): {result.stderr[-500:]}"


def main() -> None:
    import accelerate
    import transformers

    print(f"torch {torch.__version__}, accelerate {accelerate.__version__}, transformers {transformers.__version__}")
    folder = Path(tempfile.mkdtemp())
    references = {"torch": torch_route(1), "torch-lora": torch_route(1, lora=True)}
    launch("launch", 1, folder / "one.pt")
    references["launch"] = torch.load(folder / "one.pt")
    routes = ["torch", "launch", "launch-cpu", "trainer-fsdp", "trainer-fsdp-no-cpu", "presharded", "forced-state"]
    for route in routes:
        failure = launch(route, 2, folder / f"{route}.pt")
        report = torch.load(folder / f"{route}.pt") if not failure else {"error": failure}
        for name, part in report.items() if route == "torch" else [(route, report)]:
            if "weights" in part:
                reference = references[name if name.startswith("torch") else "launch"]["weights"]
                weights, initial = part.pop("weights"), part.pop("initial")
                part["max_abs_diff_vs_one_process"] = max(
                    (weights[n] - reference[n]).abs().max().item() for n in reference
                )
                part["max_abs_step_from_init"] = max((weights[n] - initial[n]).abs().max().item() for n in initial)
            print(f"{name:20s} {json.dumps(part)}")

if __name__ == "__main__":
    if len(sys.argv) == 3:
        run_route(sys.argv[1], Path(sys.argv[2]))
    else:
        main()
