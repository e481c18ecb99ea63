"""Reproduce one recorded cell from its record alone, run as a sweep runs it.

The record is validated first: the cell it describes must still hash to its cell id (a record
edited or damaged describes another cell). The cell then runs through the executor a sweep uses
(:func:`~l2obench.executors.make_executor`: a child process of its own) under the limits the
suite declares, as its runs noted them in the results folder, resolved as ``run`` resolves them
(:func:`~l2obench.suite_run.cell_limits`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from l2obench.errors import L2OBenchError
from l2obench.executors import make_executor
from l2obench.record import Cell, Limits, Record
from l2obench.runner import resolve_device
from l2obench.store import ResultStore, suite_limits
from l2obench.suite import check_cell
from l2obench.suite_run import cell_limits


def with_size_param(record: Record) -> Record:
    """``record``, with the size parameter that records written before it was a column lack."""
    from l2obench.problems.base import problem_registry

    if record.size_param is not None:
        return record
    return record.with_size_param(problem_registry.get(record.problem).size_param)


@dataclass(frozen=True)
class Rerun:
    """A recorded cell to run again: its record, the cell (on ``device`` if one was asked for),
    its limits, its PyTorch threads (the record's unless asked) and where the new record goes
    (``target``, if anywhere)."""

    original: Record
    cell: Cell
    limits: Limits
    threads: int | None
    target: ResultStore | None

    @classmethod
    def of(cls, results: str, cell_id: str, *, device: str | None = None,
           threads: int | None = None, out: str | None = None,
           wall_seconds: float | None = None, memory_mb: float | None = None) -> Rerun:
        """The re-run of the record of ``results`` whose cell id starts with ``cell_id``: an
        :class:`~l2obench.errors.L2OBenchError` where none or several match or the record
        describes another cell; ``out`` is checked to take a record before any work."""
        source = ResultStore(results)
        matches = source.find(cell_id)
        if len(matches) != 1:
            found = "no record" if not matches else f"{len(matches)} records"
            raise L2OBenchError(f"{found} with a cell id starting '{cell_id}' in "
                                f"{source.records}")
        original = matches[0]
        cell = check_cell(Cell.from_record(with_size_param(original)))
        if cell.cell_id != original.cell_id:
            raise L2OBenchError(f"the record of cell {original.cell_id} describes another cell "
                                f"({cell.cell_id}): it was edited or damaged")
        if device:
            cell = dataclasses.replace(cell, device=resolve_device(device))
        target = ResultStore(out) if out else None
        if target is not None:
            target.check_writable()  # before the work, not after it
        limits = cell_limits(suite_limits(source.root, original.suite), [cell],
                             wall_seconds=wall_seconds, memory_mb=memory_mb)
        return cls(original, cell, limits, threads or original.torch_threads, target)

    def run(self) -> Record:
        """Run the cell in a child process under the limits; store its record in ``target``."""
        with make_executor("local", self.limits, threads=self.threads) as executor:
            future = executor.submit(self.cell)
            try:
                record = future.result()
            except KeyboardInterrupt:
                executor.cancel()  # the cell's process is killed; its future settles
                raise
        if self.target is not None:
            self.target.write(record, replace=True)
        return record
