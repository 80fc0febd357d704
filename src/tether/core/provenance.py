"""What a result needs to be reproduced: library versions, platform, CPU, time."""

import datetime
import importlib.metadata
import platform
import sys

_LIBRARIES = ("tether", "torch", "transformers", "peft", "accelerate", "datasets", "trl", "openai", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu() -> dict:
    """The CPU and, where torch is loaded, the instruction set its kernels use: training on another CPU kind
    rounds differently (measured: the same seeds, code and libraries gave other study baselines on another
    machine). A run that never loaded torch (a world build) does not pay for importing it here."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model
            )
    except OSError:
        pass
    torch = sys.modules.get("torch")
    if torch is None:
        return {"model": model}
    return {
        "model": model,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def environment() -> dict:
    return {
        "versions": library_versions(),
        "platform": platform.platform(),
        "cpu": cpu(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
