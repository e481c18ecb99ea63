"""A sweep: decide which cells run, run them with an executor, store each record once.

The sweep owns each cell's life, in one loop: *claim* (take the cell's lock and check that it
still needs to run), *submit* (to the executor), *write* (its record, atomically) and *release*
(the lock). Re-running a sweep skips the cells already recorded (``resume``), or redoes all of
them (``force``), the ones that did not end ``ok`` (``retry-failed``), or the ones that ran on a
machine busier than its cores (``retry-busy``; ``retry-busy-timed``: only those a clock ended,
whose results depend on the machine's speed). Because a cell is
claimed under its lock and checked again once locked, two sweeps over the same folder split the
work instead of duplicating it, in every mode, and a sweep killed at any moment leaves only
complete records behind.

A sweep may have a second stage: ``then`` is called once every cell of the first has been
recorded and returns more cells to run in the same generation (a suite tuned at one size runs
its tuning size first, selects, then runs only the selected configuration elsewhere).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from l2obench.executors import Executor, InlineExecutor
from l2obench.record import Cell, Record, Status
from l2obench.store import CellLock, ResultStore

Mode = Literal["resume", "force", "retry-failed", "retry-busy-timed", "retry-busy"]
#: What tells one record of a cell from a later one (``None``: no record).
Version = tuple[str | None, str | None] | None


class SweepEvents(Protocol):
    """What a sweep tells its caller (the command line draws progress from it)."""

    def started(self, cell: Cell) -> None: ...

    def finished(self, cell: Cell, record: Record) -> None: ...

    def skipped(self, cell: Cell, reason: str) -> None: ...


class _Silent:
    def started(self, cell: Cell) -> None:
        pass

    def finished(self, cell: Cell, record: Record) -> None:
        pass

    def skipped(self, cell: Cell, reason: str) -> None:
        pass


@dataclass
class RunSummary:
    """What a sweep did with each of its cells."""

    written: list[Record] = field(default_factory=list)
    already_done: list[Cell] = field(default_factory=list)
    busy: list[Cell] = field(default_factory=list)  # being run by another sweep right now

    def counts(self) -> dict[Status, int]:
        """Cells written, by status (every status present, in :class:`Status` order)."""
        seen = Counter(record.status for record in self.written)
        return {status: seen[status] for status in Status}

    @property
    def unsuccessful(self) -> int:
        """Cells that ran and did not end ``ok`` or ``skipped``."""
        return sum(1 for record in self.written if not record.status.successful)


#: The reason :meth:`SweepEvents.skipped` gives for a cell that has a record already.
ALREADY_RECORDED = "already recorded"


class SweepInterrupted(Exception):
    """The sweep was interrupted (Ctrl-C): what it had done, and the cells it stopped."""

    def __init__(self, summary: RunSummary, stopped: list[Cell]) -> None:
        super().__init__(f"interrupted with {len(stopped)} cells running")
        self.summary = summary
        self.stopped = stopped


def needs_run(existing: Record | None, mode: Mode) -> bool:
    """Whether a cell with this record (or none) runs in ``mode``."""
    if existing is None or mode == "force":
        return True
    if mode == "retry-busy":
        return existing.busy
    if mode == "retry-busy-timed":
        return existing.busy and existing.timed
    return mode == "retry-failed" and existing.status != Status.OK


def _version(record: Record | None) -> Version:
    """The :data:`Version` of ``record``: its start and end times."""
    return None if record is None else (record.started_at, record.finished_at)


def run_cells(
    cells: Sequence[Cell],
    store: ResultStore,
    *,
    executor: Executor | None = None,
    mode: Mode = "resume",
    events: SweepEvents | None = None,
    then: Callable[[], Sequence[Cell]] | None = None,
) -> RunSummary:
    """Run the cells that ``mode`` selects; write each record as soon as it is complete.

    ``then``, if given, is called after the last of ``cells`` is recorded (or skipped) and its
    cells run next, in the same generation. Raises :class:`SweepInterrupted` on Ctrl-C, after
    stopping the running cells (whose records are not written: they run again on resume) and
    releasing their locks.
    """
    with store.generation(mode) as started:
        return _run(cells, store, executor or InlineExecutor(), mode, events or _Silent(),
                    started, then)


def _run(cells: Sequence[Cell], store: ResultStore, executor: Executor, mode: Mode,
         events: SweepEvents, started: str,
         then: Callable[[], Sequence[Cell]] | None = None) -> RunSummary:
    """:func:`run_cells` within the sweep's generation, which began at ``started``."""
    summary = RunSummary()
    store.set_aside_disagreeing()  # a regret edited in place would otherwise count as recorded

    def queue(stage: Sequence[Cell]) -> deque[tuple[Cell, Version]]:
        todo: deque[tuple[Cell, Version]] = deque()
        for cell in stage:
            existing = store.read(cell.cell_id)
            if needs_run(existing, mode):
                todo.append((cell, _version(existing)))
            else:
                summary.already_done.append(cell)
                events.skipped(cell, ALREADY_RECORDED)
        return todo

    def claim(cell: Cell, seen: Version) -> CellLock | None:
        """The cell's lock if it still needs running now that it is locked, else ``None``."""
        lock = store.try_lock(cell.cell_id)
        if lock is None:
            summary.busy.append(cell)
            events.skipped(cell, "being run by another sweep")
            return None
        current = store.read(cell.cell_id)
        redone = current is not None and _started_since(current, started)
        if _version(current) != seen or redone or not needs_run(current, mode):
            lock.release()  # another sweep recorded it since this one started
            summary.already_done.append(cell)
            events.skipped(cell, "recorded by another sweep")
            return None
        return lock

    running: dict[Future[Record], tuple[Cell, CellLock]] = {}
    try:
        with executor:
            try:
                _loop(queue(cells), running, claim, store, executor, mode, summary, events)
                if then is not None:
                    _loop(queue(then()), running, claim, store, executor, mode, summary, events)
            except KeyboardInterrupt:
                executor.cancel()
                raise SweepInterrupted(summary, [cell for cell, _ in running.values()]) \
                    from None
    finally:
        for _, lock in running.values():
            lock.release()
    return summary


def _started_since(record: Record, started: str) -> bool:
    """Whether ``record`` started within the generation that began at ``started``.

    Timestamps are compared as times, not strings: records written before timestamps carried
    microseconds hold whole seconds.
    """
    if record.started_at is None:
        return False
    try:
        return datetime.fromisoformat(record.started_at) >= datetime.fromisoformat(started)
    except ValueError:  # an unreadable timestamp: the record predates this generation
        return False


def _loop(
    todo: deque[tuple[Cell, Version]],
    running: dict[Future[Record], tuple[Cell, CellLock]],
    claim: Callable[[Cell, Version], CellLock | None],
    store: ResultStore,
    executor: Executor,
    mode: Mode,
    summary: RunSummary,
    events: SweepEvents,
) -> None:
    """Claim and submit while the executor has slots; write each record as it completes."""
    while todo or running:
        while todo and len(running) < executor.slots:
            cell, seen = todo.popleft()
            lock = claim(cell, seen)
            if lock is not None:
                events.started(cell)
                running[executor.submit(cell)] = (cell, lock)
        if not running:
            continue
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            cell, lock = running.pop(future)
            record = future.result()
            try:
                store.write(record, replace=mode != "resume")
            finally:
                lock.release()
            summary.written.append(record)
            events.finished(cell, record)
