"""Clocks and memory gauges that tell the truth about asynchronous devices.

Every clock read on a CUDA device is preceded by a synchronise, so queued kernels are counted.
Host peak memory uses Linux's resettable high-water mark (``/proc/self/clear_refs`` then
``VmHWM``), which sees allocations of every library in the process (torch, numpy, solvers).
Whether a cell's clocks read high because other work took its cores is measured from the
scheduler's own account of each thread (``/proc/self/task/*/schedstat``): the seconds a
thread ran, and the seconds it was ready to run but waited for a core.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_TASKS = Path("/proc/self/task")
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


@dataclass
class CpuReading:
    """What a measured phase's threads did with the CPUs, in seconds: ``cpu_s`` running and
    ``wait_s`` ready to run but waiting for a core (both ``None`` where the OS does not say).

    On a machine no busier than its cores a thread never waits; ``wait_s / cpu_s`` is the
    fraction by which waiting stretched the phase's CPU-bound work.
    """

    cpu_s: float | None = None
    wait_s: float | None = None


def thread_cpu_times() -> dict[int, tuple[int, int]] | None:
    """Per thread of this process, nanoseconds on a CPU and waiting in a run queue (Linux's
    ``schedstat``); ``None`` where the OS does not provide them."""
    times: dict[int, tuple[int, int]] = {}
    try:
        tasks = list(_TASKS.iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            running, waiting = task.joinpath("schedstat").read_text().split()[:2]
            times[int(task.name)] = (int(running), int(waiting))
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        except (OSError, ValueError):
            return None
    return times or None


@contextmanager
def cpu_waiting() -> Iterator[CpuReading]:
    """Measure the CPU seconds of this process's threads during the body and the seconds they
    waited for a core. A thread that ends within the body is not counted (a cell's threads,
    PyTorch's and XLA's pools, live as long as its process)."""
    reading = CpuReading()
    before = thread_cpu_times()
    try:
        yield reading
    finally:
        after = thread_cpu_times()
        if before is not None and after is not None:
            deltas = [(run - before.get(tid, (0, 0))[0], wait - before.get(tid, (0, 0))[1])
                      for tid, (run, wait) in after.items()]
            reading.cpu_s = sum(max(run, 0) for run, _ in deltas) / 1e9
            reading.wait_s = sum(max(wait, 0) for _, wait in deltas) / 1e9
