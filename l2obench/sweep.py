"""A sweep: decide which cells to run, run them with an executor, store each record once.

Re-running a sweep skips the cells already recorded (``resume``), or redoes all of them
(``force``) or the ones that did not end ``ok`` (``retry-failed``). Each cell is claimed with the
store's lock before it starts, so two sweeps over the same folder split the work instead of
duplicating it, and a sweep killed at any moment leaves only complete records behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from l2obench.executors import Executor, InlineExecutor
from l2obench.runner import STATUSES
from l2obench.store import ResultStore
from l2obench.suite import Cell

Mode = Literal["resume", "force", "retry-failed"]


@dataclass
class RunSummary:
    """What a sweep did with each of its cells."""

    written: list[dict[str, Any]] = field(default_factory=list)
    already_done: list[Cell] = field(default_factory=list)
    busy: list[Cell] = field(default_factory=list)  # being run by another sweep right now

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for record in self.written:
            counts[record["status"]] += 1
        return counts

    @property
    def unsuccessful(self) -> int:
        """Cells that ran and did not end ``ok`` or ``skipped``."""
        return sum(n for status, n in self.counts().items() if status not in ("ok", "skipped"))


def needs_run(existing: dict[str, Any] | None, mode: Mode) -> bool:
    """Whether a cell with this record (or none) runs in ``mode``."""
    if existing is None or mode == "force":
        return True
    return mode == "retry-failed" and existing.get("status") != "ok"


def run_cells(
    cells: Sequence[Cell],
    store: ResultStore,
    *,
    executor: Executor | None = None,
    mode: Mode = "resume",
    on_start: Callable[[Cell], None] | None = None,
    on_finish: Callable[[Cell, dict[str, Any]], None] | None = None,
    on_skip: Callable[[Cell, str], None] | None = None,
) -> RunSummary:
    """Run the cells that ``mode`` selects; write each record as soon as it is complete.

    ``on_skip`` receives the cells that do not run, with the reason.
    """
    summary = RunSummary()
    locks: dict[str, IO[str]] = {}
    todo = []
    for cell in cells:
        if needs_run(store.read(cell.cell_id), mode):
            todo.append(cell)
        else:
            summary.already_done.append(cell)
            if on_skip:
                on_skip(cell, "already recorded")

    def claim(cell: Cell) -> bool:
        lock = store.try_lock(cell.cell_id)
        if lock is None:
            summary.busy.append(cell)
            reason = "being run by another sweep"
        elif mode == "resume" and store.has(cell.cell_id):
            store.unlock(lock)
            summary.already_done.append(cell)
            reason = "recorded by another sweep"
        else:
            locks[cell.cell_id] = lock
            return True
        if on_skip:
            on_skip(cell, reason)
        return False

    try:
        for cell, record in (executor or InlineExecutor()).run(
                todo, claim, on_start or (lambda _cell: None)):
            store.write(record, replace=mode != "resume")
            store.unlock(locks.pop(cell.cell_id))
            summary.written.append(record)
            if on_finish:
                on_finish(cell, record)
    finally:
        for lock in locks.values():
            store.unlock(lock)
    return summary
