"""Where cells run: in this process, in isolated child processes, or as Ray tasks.

Isolation is the default: each cell runs in a child process forked from a server that has
already imported l2obench and torch (``multiprocessing``'s forkserver), so a cell starts in a
fraction of a second with no state of the previous one. The parent enforces the cell's wall-time
limit and host-memory cap by watching the child and killing it; a child that dies by itself is
recorded too. Every executor yields ``(cell, record)`` pairs as cells finish; the driver in
:mod:`l2obench.runner` writes them to the store.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from l2obench.errors import MissingExtraError
from l2obench.process_pool import die_with_parent
from l2obench.runner import DataCache, base_record, run_cell, warm_up
from l2obench.suite import Cell, Limits

log = logging.getLogger(__name__)

Record = dict[str, Any]
Claim = Callable[[Cell], bool]
OnStart = Callable[[Cell], None]

#: What the fork server imports once, so that each cell's child starts warm. The PyEPO methods'
#: module brings PyEPO, scikit-learn, gurobipy and JAX (about 2 s a cell otherwise); importing
#: JAX starts none of its threads, so children forked after it are safe.
_PRELOAD = ["l2obench.runner", "l2obench.methods.dys", "l2obench.methods.two_stage",
            "l2obench.methods.pyepo_losses", "torch._dynamo"]
_POLL_SECONDS = 0.1


class Executor(ABC):
    """Runs cells and yields each one's record as soon as it is complete."""

    @abstractmethod
    def run(self, cells: Iterable[Cell], claim: Claim, on_start: OnStart) -> Iterator[
            tuple[Cell, Record]]:
        """Run each cell that ``claim`` accepts (called just before it starts)."""


class InlineExecutor(Executor):
    """Cells one after another in this process: no isolation, for debugging and tests."""

    def run(self, cells: Iterable[Cell], claim: Claim, on_start: OnStart) -> Iterator[
            tuple[Cell, Record]]:
        cache = DataCache()
        warmed: set[str] = set()
        for cell in cells:
            if not claim(cell):
                continue
            if cell.device not in warmed:
                warm_up(torch.device(cell.device))
                warmed.add(cell.device)
            on_start(cell)
            yield cell, run_cell(cell, cache)


class ProcessExecutor(Executor):
    """Each cell in its own child process, ``jobs`` at a time, under ``limits``, with
    ``threads`` PyTorch threads each (default: the CPU cores shared out among the jobs)."""

    def __init__(
        self, jobs: int = 1, limits: Limits | None = None, threads: int | None = None
    ) -> None:
        self.jobs = max(1, jobs)
        self.limits = limits or Limits()
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.jobs)

    def run(self, cells: Iterable[Cell], claim: Claim, on_start: OnStart) -> Iterator[
            tuple[Cell, Record]]:
        pending = list(cells)
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            running: dict[Future[Record], Cell] = {}
            while pending or running:
                while pending and len(running) < self.jobs:
                    cell = pending.pop(0)
                    if claim(cell):
                        on_start(cell)
                        running[pool.submit(run_isolated, cell, self.limits,
                                            self.threads)] = cell
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()


class RayExecutor(Executor):
    """Cells as Ray tasks on an existing cluster (or a local instance when no address is given).

    Each task runs its cell isolated in a child process on the worker, under the same limits,
    and asks Ray for one GPU when the cell's device is CUDA, one CPU otherwise.
    """

    def __init__(self, address: str | None = None, limits: Limits | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingExtraError("--executor ray needs Ray: pip install 'l2obench[ray]'") \
                from None
        self.ray = ray
        self.limits = limits or Limits()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)

    def run(self, cells: Iterable[Cell], claim: Claim, on_start: OnStart) -> Iterator[
            tuple[Cell, Record]]:
        ray = self.ray
        task = ray.remote(max_retries=0)(run_isolated)
        submitted: dict[Any, Cell] = {}
        for cell in cells:
            if not claim(cell):
                continue
            on_start(cell)
            gpus = 1 if cell.device.startswith("cuda") else 0
            ref = task.options(num_cpus=1, num_gpus=gpus).remote(cell, self.limits, 1)
            submitted[ref] = cell
        while submitted:
            ready, _ = ray.wait(list(submitted), num_returns=1)
            cell = submitted.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except Exception as exc:  # the task or its worker failed outside the cell
                record = _ended_record(cell, "failed", f"Ray task failed: {exc}")
            yield cell, record


def run_isolated(cell: Cell, limits: Limits, threads: int | None = None) -> Record:
    """Run ``cell`` in a child process under ``limits``; always returns a complete record."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(cell, sender, threads), name=cell.cell_id)
    start = time.monotonic()
    child.start()
    sender.close()
    try:
        while True:
            if receiver.poll(_POLL_SECONDS):
                with contextlib.suppress(EOFError):
                    record = receiver.recv()
                    child.join()
                    return record
                break  # the child closed the pipe without a record: it is dying
            if not child.is_alive():
                break
            elapsed = time.monotonic() - start
            if limits.wall_seconds is not None and elapsed > limits.wall_seconds:
                _kill(child)
                return _ended_record(cell, "timeout", f"exceeded the cell's wall-time limit "
                                     f"of {limits.wall_seconds:g} s and was killed")
            rss = _rss_mb(child.pid)
            if limits.memory_mb is not None and rss is not None and rss > limits.memory_mb:
                _kill(child)
                return _ended_record(cell, "oom", f"used {rss:.0f} MB, above the cell's memory "
                                     f"cap of {limits.memory_mb:g} MB, and was killed")
        child.join()
        return _died_record(cell, child.exitcode)
    finally:
        if child.is_alive():
            _kill(child)
        receiver.close()


def _context() -> mp.context.ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _child_main(cell: Cell, sender: Any, threads: int | None) -> None:
    """The child's whole life: run the cell, send its record, exit."""
    die_with_parent()  # no orphan cell runs on
    if threads:
        torch.set_num_threads(threads)
    try:
        warm_up(torch.device(cell.device))
        record = run_cell(cell)
    except BaseException as exc:  # run_cell catches the cell's errors; this is the harness's
        record = _ended_record(cell, "failed", f"the cell's process failed: "
                               f"{type(exc).__name__}: {exc}")
    with contextlib.suppress(BrokenPipeError):  # the parent died meanwhile: nobody to tell
        sender.send(record)
        sender.close()


def _kill(child: mp.process.BaseProcess) -> None:
    child.kill()
    child.join(timeout=30)


def _rss_mb(pid: int | None) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


def _ended_record(cell: Cell, status: str, error: str) -> Record:
    record = base_record(cell)
    record.update(status=status, error=error,
                  finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return record


def _died_record(cell: Cell, exitcode: int | None) -> Record:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL:
            return _ended_record(cell, "oom", f"the cell's process was killed by {name} "
                                 "(most likely the kernel's out-of-memory killer)")
        return _ended_record(cell, "failed", f"the cell's process died from signal {name}")
    return _ended_record(cell, "failed", f"the cell's process exited with code {exitcode} "
                         "without a record")
