"""Child processes that never outlive their parent, and a process map built on them.

The executors run each cell in a child process, and a cell may spread CPU-bound batch work (exact
solves of many instances) over further processes. Either kind of child asks Linux to kill it when
its parent dies, so a cell killed for its wall-time or memory limit leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a no-op where that is unsupported)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


#: The CPUs this process's batch work may use (:func:`limit_cpus`); ``None``: every one it may
#: run on.
_cpu_share: int | None = None


def limit_cpus(count: int | None) -> None:
    """Let this process's batch work use at most ``count`` CPUs (``None``: no limit).

    A cell's process gets its share of the machine (``--threads``: one core beside other work),
    and the exact solves it spreads over processes keep to it: without the limit a cell asked to
    use one core would fork a solver worker per CPU and take the cores of the work beside it.
    """
    global _cpu_share
    if count is not None and count < 1:
        raise ValueError(f"a CPU share is at least 1; got {count}")
    _cpu_share = count


def available_cpus() -> int:
    """The CPUs this process's batch work may use: those it may run on (its affinity mask,
    where the OS has one), at most its share (:func:`limit_cpus`)."""
    mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = len(mask) if mask is not None else os.cpu_count() or 1
    return cpus if _cpu_share is None else min(cpus, _cpu_share)


def start_jax_within_share() -> None:
    """Start JAX's backends, where they have not started, with a CPU thread pool of this
    process's share of the CPUs (:func:`available_cpus`) instead of one thread per CPU.

    XLA sizes its CPU pool by the CPUs the process may run on when its backends start, and no
    flag limits it in jaxlib 0.10 (``--xla_cpu_multi_thread_eigen=false`` does not: a cell
    given one thread ran its JAX solve on two cores). So the starting thread is narrowed to the
    share while they start; then it, and every thread they started, may run on all of the
    process's CPUs again: a cell given one thread computes on one core at a time, as PyTorch's
    single thread does, on whichever core is free. Backends already started are left as they
    are (starting them again is a no-op). Needs JAX (the ``jax`` extra).
    """
    import jax

    mask = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    narrowed = False
    if mask is not None and available_cpus() < len(mask):
        before = set(os.listdir("/proc/self/task"))
        with contextlib.suppress(OSError):  # not allowed here (a sandbox): one thread per CPU
            os.sched_setaffinity(0, set(sorted(mask)[:available_cpus()]))
            narrowed = True
    try:
        jax.devices()
    finally:
        if narrowed and mask is not None:
            os.sched_setaffinity(0, mask)
            for task in set(os.listdir("/proc/self/task")) - before:
                with contextlib.suppress(OSError):  # a thread that has ended meanwhile
                    os.sched_setaffinity(int(task), mask)


def can_fork() -> bool:
    """Whether :func:`map_in_processes` can run here (it needs the ``fork`` start method)."""
    return "fork" in mp.get_all_start_methods()


def map_in_processes(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]``, computed by ``workers`` forked processes, in order.

    The workers are forked, so they start in milliseconds with the caller's modules already
    imported and need nothing re-imported; ``fn`` and each item are pickled to them. Forking a
    process that has threads (PyTorch's, BLAS's, JAX's) is safe here as long as ``fn`` does not
    use those libraries, which is why Python's and JAX's warnings about it are silenced. A
    worker that dies raises ``BrokenProcessPool`` instead of hanging; an exception in ``fn`` is
    re-raised here. Raises ``RuntimeError`` where ``fork`` is unavailable (see :func:`can_fork`).
    """
    if not can_fork():
        raise RuntimeError("map_in_processes needs the 'fork' start method (Linux, macOS)")
    with warnings.catch_warnings():
        for category in (DeprecationWarning, RuntimeWarning):
            warnings.filterwarnings("ignore", message=r".*\bfork\(\)", category=category)
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("fork"), initializer=die_with_parent
        ) as pool:
            return list(pool.map(fn, items))
