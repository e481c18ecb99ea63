"""Clocks and memory gauges that tell the truth about asynchronous devices.

Every clock read on a CUDA device is preceded by a synchronise, so queued kernels are counted.
Host peak memory uses Linux's resettable high-water mark (``/proc/self/clear_refs`` then
``VmHWM``), which sees allocations of every library in the process (torch, numpy, solvers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """A monotonic clock read after the device's queued work has finished."""
    synchronize(device)
    return time.perf_counter()


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def host_peak_mb() -> float | None:
    """The process's resident-memory high-water mark (``VmHWM``, MiB) since it started or since
    :func:`reset_host_peak`; ``None`` where the OS does not say."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024.0


def reset_host_peak() -> bool:
    """Reset the process's resident-memory high-water mark; False where the OS cannot."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass
class MemoryReading:
    """Peak memory of a measured phase, in MiB above the phase's starting point."""

    host_mb: float | None = None
    device_mb: float | None = None


@contextmanager
def peak_memory(device: torch.device) -> Iterator[MemoryReading]:
    """Measure the peak host (and device) memory used by the body above its starting point."""
    reading = MemoryReading()
    can_reset = reset_host_peak()
    baseline = _status_kib("VmRSS")
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        device_base = torch.cuda.memory_allocated(device)
    try:
        yield reading
    finally:
        peak = _status_kib("VmHWM")
        if can_reset and baseline is not None and peak is not None:
            reading.host_mb = max(peak - baseline, 0) / 1024.0
        if device.type == "cuda":
            synchronize(device)
            reading.device_mb = (torch.cuda.max_memory_allocated(device) - device_base) / 2**20
