"""What a result needs to be reproduced: library versions, platform, time."""

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


def environment() -> dict:
    return {
        "versions": library_versions(),
        "platform": platform.platform(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
