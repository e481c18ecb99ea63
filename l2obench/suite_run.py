"""A run of one suite, top to bottom: suite → cells → tuning plan → stages → notes.

:class:`SuiteRun` owns everything between a loaded suite and its records: it expands the suite
into cells (with the command line's selections of sizes, seeds and methods), plans them under
the suite's tuning rule (:class:`~l2obench.selection.TuningPlan`), resolves the limits each cell
runs under, notes the suite's cells in the results folder, builds the executor and runs the
stages through :func:`~l2obench.sweep.run_cells`: the cells it can run now, then (rule
``at-size``) the configurations selected at the tuning size. It tells its caller what happens
through events (:class:`StageEvents`); the command line only parses options and draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from l2obench.executors import Executor, ExecutorKind, make_executor
from l2obench.record import Budget, Cell, Limits, Record
from l2obench.runner import resolve_device
from l2obench.selection import Selections, TuningPlan
from l2obench.store import ResultStore
from l2obench.suite import Suite, expand
from l2obench.sweep import Mode, RunSummary, SweepEvents, needs_run, run_cells

#: The wall-time limit of a cell whose suite sets neither a training-seconds budget nor a limit.
DEFAULT_WALL_SECONDS = 12 * 3600.0


def default_wall_seconds(budget: Budget) -> float:
    """A cell's wall-time limit when nothing sets one: twice its training-seconds budget plus
    five minutes, else :data:`DEFAULT_WALL_SECONDS` (so a hung cell never hangs a sweep)."""
    if budget.max_seconds is not None:
        return 2 * budget.max_seconds + 300
    return DEFAULT_WALL_SECONDS


def cell_limits(declared: Limits, cells: Sequence[Cell], *, wall_seconds: float | None = None,
                memory_mb: float | None = None) -> Limits:
    """The limits ``cells`` run under: ``wall_seconds`` and ``memory_mb`` where given (the
    command line's), else the suite's ``declared`` ones, else a wall-time limit from the
    longest training-seconds budget of ``cells`` (:func:`default_wall_seconds`) and no memory
    cap. ``run`` and ``rerun`` both resolve them here."""
    seconds = [cell.budget.max_seconds for cell in cells]
    longest = Budget() if not seconds or any(s is None for s in seconds) else \
        Budget(max_seconds=max(s for s in seconds if s is not None))
    wall = wall_seconds or declared.wall_seconds
    return Limits(wall_seconds=wall or default_wall_seconds(longest),
                  memory_mb=memory_mb or declared.memory_mb)


@dataclass(frozen=True)
class RunOptions:
    """What the caller chooses about a suite's run, beside the suite itself.

    ``sizes``, ``seeds`` and ``methods`` keep only those cells (``None``: all); ``out`` is the
    results folder (default ``runs/<suite>``); ``wall_seconds`` and ``memory_mb`` override the
    suite's limits; ``executor``, ``jobs``, ``threads`` and ``address`` choose where cells run
    (:func:`~l2obench.executors.make_executor`).
    """

    device: str = "auto"
    sizes: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    methods: Sequence[str] | None = None
    mode: Mode = "resume"
    out: str | None = None
    wall_seconds: float | None = None
    memory_mb: float | None = None
    executor: ExecutorKind = "local"
    jobs: int = 1
    threads: int | None = None
    address: str | None = None


class StageEvents(SweepEvents, Protocol):
    """What a suite's run tells its caller: each cell's events, and each tuning selection."""

    def selected(self, selections: Selections, chosen: Sequence[Cell]) -> None:
        """The tuning size's cells are recorded: ``selections`` were made and ``chosen`` (the
        selected configurations at the other sizes) run next."""


@dataclass(frozen=True)
class RunOutcome:
    """What a suite's run did: the sweep's summary, and each cell of the run (both stages)
    with its record, where it has one (written now or before)."""

    summary: RunSummary
    records: list[tuple[Cell, Record | None]]

    def done(self) -> list[tuple[Cell, Record]]:
        """The cells that have a record, with it."""
        return [(cell, record) for cell, record in self.records if record is not None]


class SuiteRun:
    """One suite's run: its cells, its plan, its limits and results folder, and its stages.

    Construction validates and plans (nothing is written); :meth:`prepare` checks the folder,
    notes the suite and builds the executor; :meth:`run` runs the stages.
    """

    def __init__(self, suite: Suite, options: RunOptions | None = None) -> None:
        self.suite = suite
        self.options = options = options or RunOptions()
        self.device = resolve_device(options.device)
        tuning = suite.tuning
        sizes = list(options.sizes) if options.sizes else None
        #: Whether the tuning size was added to the sizes asked for: the selection at the other
        #: sizes needs its cells (recorded ones are not run again).
        self.tuning_size_added = False
        if sizes and tuning.rule == "at-size" and tuning.active and tuning.size is not None \
                and tuning.size not in sizes:
            sizes = [tuning.size, *sizes]
            self.tuning_size_added = True
        cells = expand(suite, device=self.device, sizes=sizes, seeds=options.seeds,
                       method_names=options.methods)
        self.plan = TuningPlan.of(cells, tuning)
        self.limits = cell_limits(suite.limits, cells, wall_seconds=options.wall_seconds,
                                  memory_mb=options.memory_mb)
        self.store = ResultStore(options.out or f"runs/{suite.name}")
        #: Every cell of the run so far: the first stage's, then the selected ones.
        self.cells: list[Cell] = list(self.plan.first)
        self._executor: Executor | None = None

    def budgets(self) -> list[str]:
        """The budgets of the first stage's cells, in words, each once."""
        return sorted({cell.budget.describe() for cell in self.plan.first})

    def to_run(self) -> list[Cell]:
        """The first stage's cells that the run's mode would run now, given the records in the
        folder (nothing is written: a dry run's list)."""
        return [cell for cell in self.plan.first
                if needs_run(self.store.peek(cell.cell_id), self.options.mode)]

    def prepare(self) -> None:
        """Check that the results folder takes records (before any work: a result that cannot
        be stored is lost), note the suite's cells, tuning declaration and limits there, and
        build the executor.

        The folder notes the whole suite (not only this run's selection of it), so a report of
        the suite shows the cells not run yet as missing; the cells that wait for a selection
        are noted once it is made.
        """
        options, tuning = self.options, self.suite.tuning
        self.store.check_writable()
        whole = self.plan if not (options.sizes or options.seeds or options.methods) else \
            TuningPlan.of(expand(self.suite, device=self.device), tuning)
        self.store.note_suite(self.suite.name, [cell.cell_id for cell in whole.first],
                              tuning.to_json() if tuning.active else None, self.suite.limits)
        self._executor = make_executor(options.executor, self.limits, jobs=options.jobs,
                                       threads=options.threads, address=options.address)

    def run(self, events: StageEvents) -> RunOutcome:
        """Run the stages (:meth:`prepare` first, if not done); raises
        :class:`~l2obench.sweep.SweepInterrupted` on Ctrl-C."""
        if self._executor is None:
            self.prepare()
        assert self._executor is not None

        def second_stage() -> list[Cell]:
            chosen, selections = self.plan.selected(self.store.read)
            self.store.note_suite(self.suite.name, [cell.cell_id for cell in chosen])
            self.cells.extend(chosen)
            events.selected(selections, chosen)
            return chosen

        summary = run_cells(self.plan.first, self.store, executor=self._executor,
                            mode=self.options.mode, events=events,
                            then=second_stage if self.plan.pending else None)
        written = {record.cell_id: record for record in summary.written}
        return RunOutcome(summary, [(cell, written.get(cell.cell_id)
                                     or self.store.read(cell.cell_id)) for cell in self.cells])
