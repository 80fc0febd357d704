"""What the benchmark scripts share: peak memory of the device that did the work, and timing that waits for it.

On a GPU the peak is ``torch.cuda.max_memory_allocated`` since the last ``reset_peak_memory``, so one process
can measure several phases; on the CPU it is the process's peak RSS, which only ever grows.
"""

import resource
import time

import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated since ``reset_peak_memory`` (MiB); on CPU the process's peak RSS (MB)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def memory_unit() -> str:
    return "MiB CUDA peak" if torch.cuda.is_available() else "MB peak RSS (process, cumulative)"


def clock() -> float:
    """``time.perf_counter`` once queued GPU work has finished (CUDA calls return before the work is done)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()
