"""Where cells run: in this process, in isolated child processes, or as Ray tasks.

An executor only runs cells: :meth:`Executor.submit` takes a cell and returns a future of its
complete :class:`~l2obench.record.Record`; which cells run, their locks and the store belong to
the sweep (:mod:`l2obench.sweep`). Isolation is the default: each cell runs in a child process
forked from a server that has already imported l2obench, torch and the built-in methods
(``multiprocessing``'s forkserver), so a cell starts in a fraction of a second with no state of
the previous one. The parent enforces the cell's wall-time limit and host-memory cap by watching
the child and killing it; a child that dies by itself is recorded too.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import forkserver
from multiprocessing import util as mp_util
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from l2obench.errors import MissingExtraError
from l2obench.measure import host_peak_mb
from l2obench.methods.base import method_registry
from l2obench.problems.base import Dataset, problem_registry
from l2obench.process_pool import die_with_parent, limit_cpus
from l2obench.record import Cell, Limits, Record, Status, human_seconds
from l2obench.runner import DataCache, data_key, run_cell, start_record, warm_up

log = logging.getLogger(__name__)

#: What the fork server imports besides the built-in problems and methods, so that each cell's
#: child starts warm: the runner, and the module the first optimiser imports (slow to import).
#: Importing JAX (through the PyEPO methods' modules) starts none of its threads, so children
#: forked after it are safe.
_PRELOAD = ["l2obench.runner", "torch._dynamo"]
_POLL_SECONDS = 0.1
#: The variables that size a BLAS or OpenMP library's thread pool when it is loaded.
_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class SharedDatasets:
    """Data sets drawn by one cell's process, handed to the next cells of the same problem
    configuration, so that a suite draws each configuration's data once (with a MIP oracle
    that is most of a small cell's time: ~1.5 s of a 10-item knapsack cell's 4).

    The cell that draws a data set sends it back with its record; the parent keeps the last
    ``entries`` of at most ``max_mb`` MB each, and passes the matching one to a new cell's
    process. Thread-safe (jobs run in threads of the parent). A cell computes the same
    record either way: its data are one seeded draw.
    """

    def __init__(self, entries: int = 8, max_mb: float = 64.0) -> None:
        self.entries = entries
        self.max_bytes = max_mb * 2**20
        self._held: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cell: Cell) -> Dataset | None:
        with self._lock:
            key = data_key(cell)
            data = self._held.get(key)
            if data is not None:
                self._held.move_to_end(key)
            return data

    def keeps(self, data: Dataset) -> bool:
        """Whether ``data`` is small enough to be held (and so worth sending back)."""
        return dataset_bytes(data) <= self.max_bytes

    def put(self, cell: Cell, data: Dataset) -> None:
        if not self.keeps(data):
            return
        with self._lock:
            self._held[data_key(cell)] = data
            self._held.move_to_end(data_key(cell))
            while len(self._held) > self.entries:
                self._held.popitem(last=False)


def dataset_bytes(data: Dataset[Any]) -> int:
    """The bytes of a data set's arrays: every NumPy array a split holds, whatever its task
    family's split type."""
    return sum(value.nbytes for split in (data.train, data.val, data.test)
               for value in vars(split).values() if isinstance(value, np.ndarray))


class Executor(ABC):
    """Runs cells: :meth:`submit` returns a future of each cell's record.

    ``slots`` is how many cells it runs at once; the sweep keeps at most that many submitted.
    An executor is a context manager; leaving it waits for submitted cells and frees workers.
    """

    slots: int = 1

    @abstractmethod
    def submit(self, cell: Cell) -> Future[Record]:
        """Start ``cell``; the future's result is its complete record (never an exception)."""

    def close(self) -> None:  # noqa: B027 (a no-op for executors without workers)
        """Release the executor's workers (after the cells submitted have finished)."""

    def cancel(self) -> None:  # noqa: B027 (a no-op where cells run inline)
        """Stop the cells running now (an interrupted sweep); their futures still settle."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class InlineExecutor(Executor):
    """Cells one after another in this process: no isolation, for debugging and tests.

    :meth:`submit` runs the cell before it returns (its future is already done).
    """

    def __init__(self) -> None:
        self.cache = DataCache()
        self.warmed: set[str] = set()

    def submit(self, cell: Cell) -> Future[Record]:
        if cell.device not in self.warmed:
            warm_up(torch.device(cell.device))
            self.warmed.add(cell.device)
        future: Future[Record] = Future()
        future.set_result(run_cell(cell, self.cache))
        return future


class ProcessExecutor(Executor):
    """Each cell in its own child process, ``jobs`` at a time, under ``limits``, with
    ``threads`` PyTorch threads each (default: the CPU cores shared out among the jobs)."""

    def __init__(
        self, jobs: int = 1, limits: Limits | None = None, threads: int | None = None
    ) -> None:
        self.slots = max(1, jobs)
        self.limits = limits or Limits()
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.slots)
        self.pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="cell")
        self.datasets = SharedDatasets()

    def submit(self, cell: Cell) -> Future[Record]:
        return self.pool.submit(run_isolated, cell, self.limits, self.threads, self.datasets)

    def cancel(self) -> None:
        cancel_all()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class RayExecutor(Executor):
    """Cells as Ray tasks on an existing cluster (or a local instance when no address is given).

    Each task runs its cell isolated in a child process on the worker, under the same limits,
    and asks Ray for one GPU when the cell's device is CUDA, one CPU otherwise. Ray schedules
    the tasks, so the sweep may keep ``slots`` (a large number) submitted at once.
    """

    slots = 1_000_000

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
        self.task = ray.remote(max_retries=0)(run_isolated)
        self.refs: list[Any] = []

    def submit(self, cell: Cell) -> Future[Record]:
        gpus = 1 if cell.device.startswith("cuda") else 0
        ref = self.task.options(num_cpus=1, num_gpus=gpus).remote(cell, self.limits, 1)
        future: Future[Record] = Future()

        def settle(done: Future[Any]) -> None:
            try:
                future.set_result(done.result())
            except Exception as exc:  # the task or its worker failed outside the cell
                future.set_result(ended_record(cell, Status.FAILED, f"Ray task failed: {exc}"))

        ref.future().add_done_callback(settle)
        self.refs.append(ref)
        return future

    def cancel(self) -> None:
        for ref in self.refs:
            with contextlib.suppress(Exception):  # finished already
                self.ray.cancel(ref, force=True)


#: Where cells run: each in a child process (``local``), in this process (``inline``), as Ray
#: tasks (``ray``).
ExecutorKind = Literal["local", "inline", "ray"]


def make_executor(kind: ExecutorKind, limits: Limits, *, jobs: int = 1,
                  threads: int | None = None, address: str | None = None) -> Executor:
    """The executor of ``kind`` under ``limits``: the one construction that ``run`` and
    ``rerun`` share, so a re-run cell runs as it ran in its sweep. ``jobs`` and ``threads``
    apply to ``local``, ``address`` (a Ray cluster's) to ``ray``; ``inline`` enforces no limits
    (it runs cells in this process)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "ray":
        return RayExecutor(address=address, limits=limits)
    return ProcessExecutor(jobs=jobs, limits=limits, threads=threads)


def run_isolated(cell: Cell, limits: Limits, threads: int | None = None,
                 datasets: SharedDatasets | None = None) -> Record:
    """Run ``cell`` in a child process under ``limits``; always returns a complete record.

    The child leads a process group of its own, so that whatever it starts (oracle workers, a
    library's helpers) is counted against the memory cap with it and killed with it: at a limit,
    when the cell is cancelled, and when it ends having left something running. With
    ``datasets``, the child receives the cell's data set if one is held, and sends back the one
    it draws otherwise.
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    data = datasets.get(cell) if datasets is not None else None
    share = datasets.max_bytes if datasets is not None else None
    child = ctx.Process(target=_child_main, args=(cell, sender, threads, data, share),
                        name=cell.cell_id)
    ooms_before = _oom_kills()
    start = time.monotonic()
    try:
        child.start()
    except (BrokenPipeError, ConnectionError, EOFError) as exc:
        # The child died while it read its cell (and the data sent with it): its traceback is
        # on the run's standard error; the sweep goes on with the next cell.
        receiver.close()
        sender.close()
        return ended_record(cell, Status.FAILED, "the cell's process died while it received "
                            f"its cell ({type(exc).__name__}); its own error, if it printed "
                            "one, is on the run's standard error")
    sender.close()
    _LIVE.add(child)
    try:
        while True:
            if receiver.poll(_POLL_SECONDS):
                with contextlib.suppress(EOFError):
                    record: Record
                    record, drawn, peak = receiver.recv()
                    child.join()
                    if drawn is not None and datasets is not None:
                        datasets.put(cell, drawn)
                    if limits.memory_mb is not None and peak is not None \
                            and peak > limits.memory_mb:  # over the cap between two looks
                        return ended_record(cell, Status.OOM, f"reached {peak:.0f} MB "
                                            f"resident, above the cell's memory cap of "
                                            f"{limits.memory_mb:g} MB")
                    return record
                break  # the child closed the pipe without a record: it is dying
            if not child.is_alive():
                break
            elapsed = time.monotonic() - start
            if limits.wall_seconds is not None and elapsed > limits.wall_seconds:
                _kill(child)
                return ended_record(cell, Status.TIMEOUT, f"exceeded the cell's wall-time limit "
                                    f"of {human_seconds(limits.wall_seconds)} and was killed")
            # Reading every process's /proc entries ten times a second costs the sweep's own
            # process about 1 % of a core, taken from the cells beside it: only under a cap.
            rss = _group_rss_mb(child.pid) if limits.memory_mb is not None else None
            if limits.memory_mb is not None and rss is not None and rss > limits.memory_mb:
                _kill(child)
                return ended_record(cell, Status.OOM, f"used {rss:.0f} MB (its process and "
                                    f"those it started), above the cell's memory cap of "
                                    f"{limits.memory_mb:g} MB, and was killed")
        child.join()
        ooms_after = _oom_kills()
        oom_killed = (None if ooms_before is None or ooms_after is None
                      else ooms_after > ooms_before)
        return died_record(cell, child.exitcode, oom_killed=oom_killed)
    finally:
        _kill(child)
        _LIVE.discard(child)
        receiver.close()


def cancel_all() -> int:
    """Kill every cell process this process is running (an interrupted sweep); how many."""
    children = list(_LIVE)
    for child in children:
        _kill(child)
    return len(children)


#: The cells' child processes alive in this process, for :func:`cancel_all`.
_LIVE: set[mp.process.BaseProcess] = set()


def preload_modules() -> list[str]:
    """The fork server's imports: the built-in problems and methods (from the registries'
    entry points) and :data:`_PRELOAD`."""
    return [*_PRELOAD, *problem_registry.builtin_modules(), *method_registry.builtin_modules()]


def _context() -> mp.context.ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload_modules())
    _start_fork_server()
    return ctx


def _start_fork_server() -> None:
    """Start the fork server (if it is not running) in a session of its own.

    A terminal's Ctrl-C goes to its foreground process group; in that group the server, which
    imports torch and the methods for seconds, printed the interrupted imports' traceback.
    Out of it, the server and the cells it forks never see a Ctrl-C (the sweep stops those by
    killing their process groups); they end with this process, when the pipe ``multiprocessing``
    keeps open to the server closes. Ignoring SIGINT while the server started did the same but
    lost a Ctrl-C that came in those milliseconds.
    """
    with _SERVER_LOCK:
        spawn = mp_util.spawnv_passfds
        mp_util.spawnv_passfds = _spawn_in_own_session
        try:
            forkserver.ensure_running()
        finally:
            mp_util.spawnv_passfds = spawn


#: The fork servers started (one per process, while it runs): ``multiprocessing`` waits for the
#: server by its pid, so its ``Popen`` object is kept, never collected (which would reap it).
_SERVERS: list[subprocess.Popen[bytes]] = []
_SERVER_LOCK = threading.Lock()


def _spawn_in_own_session(path: bytes, args: Sequence[Any], passfds: Sequence[int]) -> int:
    """``multiprocessing.util.spawnv_passfds`` (start ``path`` with ``args``, keeping the file
    descriptors ``passfds`` open, and return its pid), in a new session.

    The server runs with ``-P``: ``python -c`` would put the working directory first on the path
    the server imports its preloaded modules from, so a run started inside another checkout of
    l2obench ran that checkout's code in its cells (and recorded that checkout's commit) while
    the command itself ran the installed one.
    """
    command = [args[0], "-P", *args[1:]]
    server = subprocess.Popen(command, executable=path, pass_fds=sorted(passfds),
                              start_new_session=True)
    _SERVERS.append(server)
    return server.pid


def _child_main(cell: Cell, sender: Any, threads: int | None, data: Dataset | None = None,
                share_bytes: float | None = None) -> None:
    """The child's whole life: run the cell (on ``data`` if given), send its record (and the
    data set it drew, if no larger than ``share_bytes``), exit."""
    os.setpgid(0, 0)  # a group of its own: what it starts is counted and killed with it
    die_with_parent()  # no orphan cell runs on
    # The heap inherited from the fork server (torch, PyEPO, the solvers: millions of objects)
    # lives as long as the child: out of the collector's sight, a full collection costs
    # milliseconds instead of ~0.6 s (the runner collects twice per cell), and no collection
    # copies the server's pages by touching their objects.
    gc.freeze()
    if threads:
        torch.set_num_threads(threads)
        # NumPy's and SciPy's BLAS (OpenBLAS starts a thread per CPU) and OpenMP pools, which
        # PyTorch's setting does not reach: a cell given one thread computed on two cores.
        # The libraries loaded already are limited now, those loaded later by the variables.
        threadpool_limits(threads)
        os.environ.update({name: str(threads) for name in _POOL_VARIABLES})
        limit_cpus(threads)  # its exact solves keep to the cell's share of the cores too
    cache = DataCache()
    try:
        warm_up(torch.device(cell.device))
        if data is not None:
            cache.put(cell, data)
        record = run_cell(cell, cache)
    except BaseException as exc:  # run_cell catches the cell's errors; this is the harness's
        record = ended_record(cell, Status.FAILED, f"the cell's process failed: "
                               f"{type(exc).__name__}: {exc}")
    drawn = cache.data if cache.generated else None
    if drawn is not None and (share_bytes is None or dataset_bytes(drawn) > share_bytes):
        drawn = None
    with contextlib.suppress(BrokenPipeError):  # the parent died meanwhile: nobody to tell
        sender.send((record, drawn, host_peak_mb()))
        sender.close()


def _kill(child: mp.process.BaseProcess) -> None:
    """Kill the cell's process group (the cell and what it started), then reap the cell."""
    if child.pid is not None:
        with contextlib.suppress(OSError):  # the group is gone, or not made yet
            os.killpg(child.pid, signal.SIGKILL)
    if child.is_alive():
        child.kill()
    child.join(timeout=30)


def _group_rss_mb(pgid: int | None) -> float | None:
    """Resident memory of every process in group ``pgid`` (MiB), or ``None`` if unknown."""
    if pgid is None:
        return None
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text[text.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:  # field 5 of stat, after the command's name
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                found = True
    return total / 1024.0 if found else None


def _oom_kills() -> int | None:
    """The kernel's out-of-memory kills so far in this process's memory cgroup, if readable
    (cgroup v2 ``memory.events`` or v1 ``memory.oom_control``, both count ``oom_kill``)."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for entry in entries:
        _, controllers, group = entry.split(":", 2)
        if controllers == "":
            path = Path("/sys/fs/cgroup", group.lstrip("/"), "memory.events")
        elif "memory" in controllers.split(","):
            path = Path("/sys/fs/cgroup/memory", group.lstrip("/"), "memory.oom_control")
        else:
            continue
        try:
            for line in path.read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


def ended_record(cell: Cell, status: Status, error: str) -> Record:
    """The record of a cell that ended without producing measurements."""
    return start_record(cell).ended(status, error)


def died_record(cell: Cell, exitcode: int | None, oom_killed: bool | None = None) -> Record:
    """The record of a cell whose process died without sending one.

    A SIGKILL is the kernel's out-of-memory killer only where the cgroup's ``oom_kill`` count
    rose meanwhile (``oom_killed``); otherwise something outside l2obench killed it.
    """
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL and oom_killed:
            return ended_record(cell, Status.OOM, f"the cell's process was killed by {name}: "
                                "the kernel's out-of-memory killer (the cgroup's oom_kill count "
                                "rose)")
        if -exitcode == signal.SIGKILL:
            cause = ("not by l2obench, nor by the kernel's out-of-memory killer" if oom_killed
                     is False else "not by l2obench (the out-of-memory killer cannot be told "
                     "apart here)")
            return ended_record(cell, Status.FAILED, f"the cell's process was killed by {name} "
                                f"from outside, {cause}")
        return ended_record(cell, Status.FAILED, f"the cell's process died from signal {name}")
    return ended_record(cell, Status.FAILED, f"the cell's process exited with code {exitcode} "
                        "without a record")
