"""The ``l2obench`` command: ``run`` a suite, ``list`` what is registered.

Input errors (unknown suite, method or parameter, a malformed suite file, a size out of range)
end with exit status 2 and one message; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import math
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from l2obench import __version__
from l2obench.display import (
    Column,
    cell_line,
    compact_labels,
    count,
    fit_label,
    fit_table,
    run_labels,
    short_label,
    shorten,
)
from l2obench.errors import L2OBenchError, did_you_mean
from l2obench.record import RECORD_COLUMNS, Cell, Record, Status, load_average
from l2obench.tasks.base import Metric, Task, task_of

if TYPE_CHECKING:
    from l2obench.selection import Selections, Tuning
    from l2obench.sweep import Mode

EXIT_USAGE = 2
EXIT_CELLS_FAILED = 1
EXIT_INTERRUPTED = 130


class UsageError(L2OBenchError):
    """A command-line value that is malformed."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-line message on bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if wrong:  # a misspelt command: name the closest
            choices = re.findall(r"'([^']*)'", wrong[2])
            message = f"{message}{did_you_mean(wrong[1], choices)}"
        self.exit(EXIT_USAGE, f"l2obench: error: {message}\n"
                              f"(see '{self.prog} --help')\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") \
            from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"repeated values in '{text}'")
    return values


def _name_list(text: str) -> list[str]:
    values = [item.strip() for item in text.split(",") if item.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one name")
    return values


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got '{text}'") \
                from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got '{text}'")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="l2obench", description="Benchmarks for learning-to-optimize methods.")
    parser.add_argument("--version", action="version", version=f"l2obench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a suite and record one result per cell")
    run.add_argument("--suite", required=True,
                     help="a built-in suite's name (see 'l2obench list') or a suite file's path")
    run.add_argument("--quick", action="store_true",
                     help="the suite's [quick] profile: tiny sizes and budgets, a smoke run")
    run.add_argument("--sizes", type=_int_list, help="only these problem sizes, e.g. 5,10")
    run.add_argument("--methods", type=_name_list, help="only these methods, e.g. dys-jfb")
    run.add_argument("--add-method", action="append", default=[], metavar="NAME[k=v,...]",
                     help="run this method too, beside the suite's (repeatable), e.g. "
                          "'my-method[lr=0.01]' for a plugin's method in a built-in suite")
    run.add_argument("--seeds", type=_int_list, help="only these seeds, e.g. 0,1,2")
    _add_device(run)
    run.add_argument("--out", help="results folder (default: runs/<suite>)")
    budget = run.add_argument_group("budget (part of each cell's identity)")
    budget.add_argument("--max-epochs", type=_positive(int), help="override the suite's epochs")
    budget.add_argument("--max-seconds", type=_positive(float),
                        help="override the suite's training seconds per cell")
    _add_limits(run)
    run.add_argument("--dry-run", action="store_true",
                     help="validate everything and list the cells, run nothing")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--force", action="store_true", help="redo cells already recorded")
    again.add_argument("--retry-failed", action="store_true",
                       help="redo recorded cells whose status is not ok")
    again.add_argument("--retry-busy", choices=("timed", "all"),
                       help="redo recorded cells that ran while the machine was busier "
                            "than its cores (their threads waited for a core more than 10 %% "
                            "of the time they ran; older records: the load average exceeded "
                            "the cores): 'timed', those a clock ended (stopped by the "
                            "seconds budget, or timed out), whose results depend on the "
                            "machine's speed; 'all', every one (for timing figures); run it "
                            "on a quiet machine")
    where = run.add_argument_group("executor")
    where.add_argument("--executor", choices=("local", "inline", "ray"), default="local",
                       help="local: each cell in a child process (default); inline: in this "
                            "process, no isolation; ray: Ray tasks")
    where.add_argument("--jobs", type=_positive(int), default=1,
                       help="cells at once with the local executor (default 1)")
    where.add_argument("--threads", type=_positive(int),
                       help="PyTorch threads per cell with the local executor, and the "
                            "threads of its BLAS, solver and JAX pools and the processes its "
                            "exact solves may spread over (default: CPU cores // "
                            "jobs); 1 on a machine shared with other work, where threads that "
                            "wait for a busy core slow each step down")
    where.add_argument("--address", help="Ray cluster address (default: start a local Ray)")

    rerun = commands.add_parser("rerun", help="reproduce one recorded cell from its record")
    rerun.add_argument("cell_id", help="the record's cell_id (a unique prefix is enough)")
    rerun.add_argument("--results", required=True, help="the results folder holding the record")
    rerun.add_argument("--device", choices=("cpu", "cuda", "auto"),
                       help="run on this device instead of the recorded one")
    rerun.add_argument("--out", help="also store the new record in this results folder")
    rerun.add_argument("--threads", type=_positive(int),
                       help="PyTorch threads for the re-run (default: the record's)")
    _add_limits(rerun)

    report = commands.add_parser("report", help="plots, LEADERBOARD.md and index.html from "
                                                "a results folder")
    report.add_argument("--results", required=True, help="a results folder (l2obench run --out)")
    report.add_argument("--out", help="where to write the report (default: <results>/report)")
    report.add_argument("--suite", help="only this suite's records")
    report.add_argument("--notes", metavar="FILE",
                        help="a Markdown file shown at the top of both pages (what changed, "
                             "caveats)")
    report.add_argument("--publish", action="store_true",
                        help="write into the checkout's results/<suite>/, where published "
                             "baselines live (needs --suite; refused while cells of the suite "
                             "have no record)")
    report.add_argument("--baseline", metavar="DIR",
                        help="a results folder (e.g. a published results/<suite>/) to compare "
                             "against: each method's change, with a paired test where the "
                             "cells match")
    report.add_argument("--reference", metavar="FILE", action="append", default=[],
                        help="a CSV of numbers a paper published (see "
                             "results/reference/README.md), shown beside l2obench's "
                             "(repeatable; --publish keeps a copy beside the records)")
    report.add_argument("--allow-incomplete", action="store_true",
                        help="publish although some of the suite's cells have no record (the "
                             "pages say how many)")

    listing = commands.add_parser("list", help="show problems, methods and suites")
    for command in (run, rerun, report, listing):
        command.set_defaults(command_parser=command)
    return parser


def _add_limits(parser: argparse.ArgumentParser) -> None:
    limits = parser.add_argument_group("limits (a cell that overruns them is killed and "
                                       "recorded)")
    limits.add_argument("--cell-timeout", type=_positive(float), metavar="SECONDS",
                        help="wall-time limit per cell (default: the suite's, else twice the "
                             "training budget plus 5 minutes)")
    limits.add_argument("--memory-cap-mb", type=_positive(float), metavar="MB",
                        help="host memory limit per cell (default: the suite's, else none)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="where methods train (default: cuda when visible, else cpu)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with _clean_interrupts() as received:
            try:
                code = _main(argv)
            except KeyboardInterrupt:  # before the command began (or after it ended)
                code = _interrupted()
    except KeyboardInterrupt:  # in the instant before the handler is set, or after it is reset
        return _interrupted()
    # Stopped by SIGTERM (`kill PID`, a sweep script's stop): the shell's 128 + 15, not 130.
    return 128 + signal.SIGTERM if code == EXIT_INTERRUPTED and received == [signal.SIGTERM] \
        else code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # refused by the parser of where they stand, which points to its own help
        tokens = list(sys.argv[1:] if argv is None else argv)
        before = tokens.index(unknown[0]) < tokens.index(args.command)
        (parser if before else args.command_parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    # Plain lines on stderr ("warning: damaged record PATH (…)"): one line each, never wrapped.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")
    # Logs and pipes are read later in an editor: do not wrap them at 80 columns.
    # A terminal's own width (or $COLUMNS); logs and pipes get 140 columns, read in an editor.
    console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
    try:
        if args.command == "run":
            return _run(args, console)
        if args.command == "rerun":
            return _rerun(args, console)
        if args.command == "report":
            return _report(args, console, argv)
        # In a pipe, nothing is cut to fit a width (a pipe has none): every row one line.
        piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        _list(Console(width=100_000) if piped else console)
        return 0
    except L2OBenchError as exc:
        return _error(str(exc))
    except OSError as exc:  # the file system refused something no check foresaw
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    Console(stderr=True).print("l2obench: interrupted", highlight=False)
    return EXIT_INTERRUPTED


@contextlib.contextmanager
def _clean_interrupts() -> Iterator[list[int]]:
    """Within this block a Ctrl-C (SIGINT) or a SIGTERM raises ``KeyboardInterrupt`` only where
    it can propagate, so that either stops a run the same way: its running cells killed, the
    completed ones kept. Yields the list of the signals received (the first of them).

    Python raises it wherever the main thread is; inside an import (a library left half
    imported fails later with an unrelated error) or a garbage-collector callback (JAX registers
    one; the exception is printed as "Exception ignored" with a traceback, and lost) it does
    harm. There the interrupt is put off and delivered again a moment later, until it lands
    in the command's own code. A signal ignored when the command started (nohup, a script's
    ``&``) stays ignored.
    """
    received: list[int] = []
    signals = [sig for sig in (signal.SIGINT, signal.SIGTERM)
               if signal.getsignal(sig) is not signal.SIG_IGN]
    if threading.current_thread() is not threading.main_thread() or not signals:
        yield received
        return
    lock = threading.Lock()
    active = [True]  # False once the block ends: a late redelivery is dropped

    main = threading.main_thread().ident
    assert main is not None

    def redeliver(signum: int) -> None:  # a real signal: it also wakes a main thread on a lock
        with lock:
            if active[0]:
                signal.pthread_kill(main, signum)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if not active[0]:
            return  # redelivered after the block ended: the command has ended already
        if _in_unsafe_place(frame):
            threading.Timer(0.05, redeliver, (signum,)).start()
            return
        received[:] = received or [signum]
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_interrupt) for sig in signals}
    try:
        yield received
    finally:
        with lock:
            active[0] = False
        _settle()  # a redelivery made before that runs here, in this handler, and is dropped
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _settle() -> None:
    """Nothing: calling it lets the main thread run the signal handlers that are pending."""


def _in_unsafe_place(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import or a garbage-collector callback."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or code in callbacks:
            return True
        frame = frame.f_back
    return False


def _error(message: str) -> int:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]l2obench: error:[/] "
                                               f"{escape(message)}", highlight=False)
    return EXIT_USAGE


def _check_executor_options(args: argparse.Namespace) -> None:
    """Options that the chosen executor would ignore are usage errors."""
    if args.executor != "local":
        for option, value in (("--jobs", args.jobs != 1), ("--threads", args.threads)):
            if value:
                raise UsageError(f"{option} applies to the local executor only, not "
                                 f"--executor {args.executor}")
    if args.address and args.executor != "ray":
        raise UsageError("--address applies to --executor ray only")


def _run(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from l2obench.suite import load_suite, with_methods
    from l2obench.suite_run import RunOptions, SuiteRun
    from l2obench.sweep import ALREADY_RECORDED, SweepInterrupted

    _check_executor_options(args)
    if args.out is not None and not args.out.strip():
        raise UsageError("--out: the results folder may not be empty")
    suite = with_methods(load_suite(args.suite, quick=args.quick), args.add_method) \
        .with_budget(args.max_epochs, args.max_seconds)
    mode: Mode = "force" if args.force else "retry-failed" if args.retry_failed else \
        "retry-busy-timed" if args.retry_busy == "timed" else \
        "retry-busy" if args.retry_busy == "all" else "resume"
    sweep = SuiteRun(suite, RunOptions(
        device=args.device, sizes=args.sizes, seeds=args.seeds, methods=args.methods, mode=mode,
        out=args.out, wall_seconds=args.cell_timeout, memory_mb=args.memory_cap_mb,
        executor=args.executor, jobs=args.jobs, threads=args.threads, address=args.address))
    plan, store = sweep.plan, sweep.store
    if sweep.tuning_size_added:
        console.print(f"tuning at size {suite.tuning.size}: its cells run first (those recorded "
                      "are skipped)", highlight=False)
    if args.dry_run:
        todo = sweep.to_run()
        for cell in todo:
            console.print(f"{cell.cell_id}  {escape(cell.label)}", highlight=False)
        skipped = len(plan.first) - len(todo)
        if skipped:
            option = "--retry-failed" if args.retry_failed else \
                f"--retry-busy {args.retry_busy}" if args.retry_busy else ""
            console.print(f"{count(skipped, 'cell')} already recorded"
                          + (f" (and not selected by {option})" if option else ""),
                          highlight=False)
        then = ""
        if plan.pending:
            then = (f", then the selected configuration of each tuned method at the other "
                    f"sizes: up to {len(plan.pending)} more")
        console.print(f"{count(len(todo), 'cell')} would run on {sweep.device}{then} → "
                      f"{store.root} (budget {'; '.join(sweep.budgets())}; limits "
                      f"{sweep.limits.describe()})", highlight=False)
        return 0
    load, cores = load_average(), os.cpu_count()
    if args.retry_busy and load is not None and cores is not None and load > cores:
        console.print(f"[yellow]warning:[/] the load average is {load:g} on {cores} cores: the "
                      "cells rerun now share their cores too (run --retry-busy on a quiet "
                      "machine)", highlight=False)
    sweep.prepare()
    console.print(f"[bold]{escape(suite.name)}[/]{' (quick)' if args.quick else ''}: "
                  f"{count(len(plan.first), 'cell')} on {sweep.device} → {store.root}"
                  + (f"; then the selected configurations at the other sizes (of "
                     f"{len(plan.pending)})" if plan.pending else ""), highlight=False)
    if suite.left_out:
        console.print(f"[dim]left out by the suite, which says why: "
                      f"{escape(', '.join(suite.left_out))}[/]", highlight=False)
    width = console.width
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=None),
                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=console, transient=True,
                  expand=True) as progress:
        task = progress.add_task("cells", total=len(plan.first))
        label_room = max(12, width // 2 - 4)
        labels = run_labels(plan.first)

        class Events:
            """The run's events as lines; cells already recorded are counted in one line."""

            def __init__(self) -> None:
                self.already = 0

            def flush(self) -> None:
                if self.already:
                    progress.console.print(f"[dim]{count(self.already, 'cell')} already "
                                           "recorded, skipped[/]", highlight=False)
                    self.already = 0

            def started(self, cell: Cell) -> None:
                self.flush()
                label = fit_label(cell, label_room, labels.get(cell.cell_id))
                progress.update(task, description=escape(label))

            def finished(self, cell: Cell, record: Record) -> None:
                self.flush()
                progress.console.print(cell_line(cell, record, width, labels.get(cell.cell_id)),
                                       highlight=False)
                progress.advance(task)

            def skipped(self, cell: Cell, reason: str) -> None:
                progress.advance(task)
                if reason == ALREADY_RECORDED:
                    self.already += 1
                    return
                self.flush()
                text = shorten(f"{short_label(cell)}: {reason}", width - 10)
                progress.console.print(f"[dim]       · {escape(text)}[/]", highlight=False)

            def selected(self, selections: Selections, chosen: Sequence[Cell]) -> None:
                self.flush()
                for line in _selection_lines(selections, plan.first):
                    progress.console.print(line, highlight=False)
                labels.update(run_labels(sweep.cells))
                progress.update(task, total=len(sweep.cells))

        events = Events()
        try:
            outcome = sweep.run(events)
        except SweepInterrupted as stop:
            events.flush()
            progress.stop()
            console.print(f"interrupted: {len(stop.summary.written)} cells recorded in this "
                          f"run; {len(stop.stopped)} running cells stopped, not recorded (they "
                          f"run again on resume). Records in {store.root}", highlight=False)
            return EXIT_INTERRUPTED
        events.flush()

    done = outcome.done()
    if done:
        table, notes = _summary_table(done, suite.tuning, console.width)
        console.print(table)
        for note in notes:
            console.print(f"[dim]{escape(note)}[/]", highlight=False)
    summary = outcome.summary
    parts = [f"{n} {status}" for status, n in summary.counts().items() if n]
    if summary.already_done:
        parts.append(f"{len(summary.already_done)} already recorded")
    if summary.busy:
        parts.append(f"{len(summary.busy)} being run by another sweep")
    console.print(f"{count(len(sweep.cells), 'cell')}: {', '.join(parts) or 'nothing to do'}. "
                  f"Records in {store.root}", highlight=False)
    return EXIT_CELLS_FAILED if summary.unsuccessful else 0


def _report(args: argparse.Namespace, console: Console, argv: Sequence[str] | None) -> int:
    from l2obench import report  # matplotlib and seaborn load only for reports

    if args.publish and not args.suite:
        raise UsageError("--publish needs --suite: a published report is one suite's")
    if args.publish and args.out:
        raise UsageError("--publish writes to results/<suite>/; leave out --out")
    if args.allow_incomplete and not args.publish:
        raise UsageError("--allow-incomplete applies to --publish only")
    out = report.publish_dir(args.suite) if args.publish else \
        Path(args.out or Path(args.results) / "report")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file of that name is in the way (a report is a folder)")
    command = shlex.join(["l2obench", *(sys.argv[1:] if argv is None else argv)])
    notes = _read_notes(args.notes) if args.notes else ""
    results = Path(args.results)
    if args.publish and results.resolve() != out.resolve():
        _publish_records(results, out, args.suite, args.allow_incomplete)
        results = out  # the published page is made from the records published beside it
    if args.publish:
        report.publish_references(args.reference, out)
    files = report.build_report(results, out, suite=args.suite, command=command,
                                notes=notes,
                                allow_incomplete=not args.publish or args.allow_incomplete,
                                baseline=args.baseline, references=args.reference)
    console.print(f"report written to {files.out}: {files.leaderboard.name}, "
                  f"{files.index.name}, {len(files.figures)} figures", highlight=False)
    if files.missing:
        console.print(f"[yellow]warning:[/] {files.missing} cells of suite '{args.suite}' have "
                      f"no record in {args.results}; the pages say so", highlight=False)
    return 0


def _publish_records(results: Path, out: Path, suite: str, allow_incomplete: bool) -> None:
    """Make the published folder ``out`` hold suite ``suite``'s records from ``results`` (the
    cells its runs asked for there) and nothing else; refused while some have no record,
    unless ``allow_incomplete``."""
    from l2obench.store import ResultStore, suite_cells, suite_records, suite_tuning

    if not (results / "records").is_dir():
        raise UsageError(f"--results {results}: no records/ folder to publish")
    mine, missing = suite_records(results, suite)
    if not mine:
        raise UsageError(f"no records of suite '{suite}' under {results}")
    if missing and not allow_incomplete:
        raise UsageError(f"suite '{suite}' has {missing} cells without a record in {results}; "
                         "run them first (the same 'l2obench run' resumes), or pass "
                         "--allow-incomplete")
    wanted = suite_cells(results, suite)
    ResultStore(out).hold_exactly(mine, suite, wanted, suite_tuning(results, suite))


def _read_notes(path: str) -> str:
    """The text of a ``--notes`` file, or a usage error naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the notes file {path}: {exc}") from None


def _rerun(args: argparse.Namespace, console: Console) -> int:
    from l2obench.rerun import Rerun

    rerun = Rerun.of(args.results, args.cell_id, device=args.device, threads=args.threads,
                     out=args.out, wall_seconds=args.cell_timeout,
                     memory_mb=args.memory_cap_mb)
    console.print(f"re-running {escape(rerun.cell.label)} (cell {rerun.original.cell_id}, "
                  f"{rerun.threads or 'default'} PyTorch threads; limits "
                  f"{rerun.limits.describe()})", highlight=False)
    record = rerun.run()
    console.print(_comparison_table(rerun.original, record))
    console.print(_conditions(rerun.original, record), highlight=False)
    return 0 if record.status == Status.OK else EXIT_CELLS_FAILED


#: The record columns that describe where and how a cell ran.
_CONDITIONS = ("device", "device_name", "hostname", "torch_threads", "torch_version",
               "numpy_version", "python_version", "l2obench_version", "git_commit")


def _conditions(original: Record, new: Record) -> str:
    """Where the re-run's conditions differ from the record's (so timings can be read)."""
    changed = [f"{name} {getattr(original, name)} → {getattr(new, name)}"
               for name in _CONDITIONS if getattr(original, name) != getattr(new, name)]
    if not changed:
        return "conditions: as recorded (device, machine, threads, versions, commit)"
    return "conditions that differ from the record's: " + "; ".join(changed)


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _summary_columns(task: Task) -> dict[str, tuple[str, str, int]]:
    """The summary's columns for cells of ``task``: its ranking and validation metrics, then
    :data:`_RUN_SUMMARY`."""
    short = task.ranking().short_label
    return {short: (task.rank_metric, ".4f", 0),
            f"val {short}": (task.validation.name, ".4f", 3), **_RUN_SUMMARY}


def _value(record: Record, column: str) -> Any:
    """A record's value of a summary column: a record column, else a metric of its task."""
    return getattr(record, column) if column in RECORD_COLUMNS else record.metric(column)


_RUN_SUMMARY = {  # header: (record column, format, priority: dropped first when narrow)
    "test loss": ("test_loss", ".4g", 6), "epochs": ("epochs", ".3g", 4),
    "s/epoch": ("time_per_epoch_s", ".3g", 2), "to best s": ("time_to_best_s", ".3g", 5),
    "peak MB": ("peak_mem_mb", ".0f", 7), "fwd iters": ("fwd_iters_mean", ".0f", 1),
}


def _selection_lines(selections: Selections, cells: Sequence[Cell]) -> list[str]:
    """What a tuning stage selected, one line per tuned method and data point (named by the
    data parameters that vary)."""
    from l2obench.selection import data_key

    names = {data_key(c.problem_params, c.size_param): c.data_label for c in cells}
    lines = []
    for (group, _, identity), choice in sorted(selections.choices.items(), key=str):
        if choice.candidates > 1:
            data = names.get(group[2], "") if isinstance(group, tuple) else ""
            where = f" at {escape(data)}" if data else ""
            lines.append(f"[bold]selected[/] {escape(identity)} {escape(choice.configuration)}"
                         f"{where}: {escape(choice.reason)}")
    for (group, _, identity), why in sorted(selections.missing.items(), key=str):
        data = names.get(group[2], "") if isinstance(group, tuple) else ""
        where = f" at {escape(data)}" if data else ""
        lines.append(f"[yellow]no selection[/] for {escape(identity)}{where}: {escape(why)}; "
                     "it does not run at the other sizes")
    return lines


def _summary_table(done: list[tuple[Cell, Record]], tuning: Tuning,
                   width: int) -> tuple[Table, list[str]]:
    """One row per configuration (size, data point, method label): each column the mean over
    its ok seeds, as the report aggregates them (:func:`l2obench.report.aggregate.aggregate`,
    the configurations the suite's rule selects marked by
    :func:`l2obench.report.configurations.annotate`). Within a size and data point, rows are
    sorted by the task family's ranking metric, in its direction (``Task.ranking``), and the
    best is marked; with tuning declared, the selected configuration is marked too."""
    from l2obench.report.aggregate import aggregate
    from l2obench.report.configurations import annotate
    from l2obench.selection import data_key, given_params
    from l2obench.store import results_frame

    task = task_of(cell.task for cell, _ in done)
    summary_columns = _summary_columns(task)
    ranking = task.ranking()  # what the rows are sorted by, and its direction
    records, _ = annotate(results_frame([record for _, record in done]),
                          {cell.suite: tuning for cell, _ in done})
    agg = aggregate(records, dict.fromkeys([ranking.name, *(column for column, _, _
                                                             in summary_columns.values())]))
    # Each row's cells: what names its data point and method, and the statuses other than ok.
    cells: dict[tuple[int, str, str], Cell] = {}
    statuses: dict[tuple[int, str, str], set[str]] = {}
    for cell, record in done:
        key = (cell.size, data_key(cell.problem_params, cell.size_param), cell.method_label)
        cells.setdefault(key, cell)
        statuses.setdefault(key, set()).add(str(record.status))
    rows = sorted((row for _, row in agg.iterrows()), key=lambda row: (
        int(row["size"]), cells[_row_key(row)].data_label,
        _rank_order(ranking, row[f"{ranking.name}_mean"]), str(row["method_label"])))
    best: dict[tuple[int, str], tuple[int, str, str]] = {}  # (size, data) -> its best row
    for row in rows:
        if math.isfinite(row[f"{ranking.name}_mean"]):
            best.setdefault(_row_key(row)[:2], _row_key(row))
    shown = {header: spec for header, spec in summary_columns.items()
             if agg[f"{spec[0]}_mean"].notna().any()}
    with_data = any(cells[_row_key(row)].data_label for row in rows)
    sizes, datas, names, solved_cells = [], [], [], []
    entries: list[tuple[str, dict[str, Any]]] = []
    values: dict[str, list[str]] = {header: [] for header in shown}
    for row in rows:
        key = _row_key(row)
        cell, solved, attempted = cells[key], int(row["solved"]), int(row["attempted"])
        others = sorted(statuses[key] - {"ok"})
        style = "green" if solved == attempted else "yellow" if solved else "red"
        solved_cells.append(f"[{style}]{solved}/{attempted}[/]"
                            + (f" {', '.join(others)}" if others else ""))
        marked = bool(row["tuned"]) and bool(row["selected"])
        names.append(("» " if best.get(key[:2]) == key else "") + ("* " if marked else ""))
        entries.append((cell.method, given_params(cell.method, cell.method_label,
                                                  cell.method_params)))
        sizes.append(str(cell.size))
        datas.append(escape(cell.data_label))
        for header, (column, spec, _) in shown.items():
            mean = row[f"{column}_mean"]
            values[header].append(_fmt(None if math.isnan(mean) else mean, spec))
    labels, notes = compact_labels(entries)
    names = [mark + escape(label) for mark, label in zip(names, labels, strict=True)]
    columns = [Column("size", sizes), *([Column("data", datas, "left", 0, True)]
                                        if with_data else []),
               Column("method", names, "left", 0, True), Column("ok", solved_cells)]
    columns += [Column(header, values[header], "right", spec[2])
                for header, spec in shown.items()]
    best_is = "lowest" if ranking.direction == "min" else "highest"
    marks = [f"» {best_is} {ranking.short_label}"] + (
        ["* selected"] if any("* " in n for n in names) else [])
    title = f"Summary: mean over the ok seeds; {'; '.join(marks)}"
    table, dropped = fit_table(title, columns, width)
    lines = list(notes)
    if dropped:
        lines.append(f"left out at this width: {', '.join(dropped)}")
    return table, [shorten(line, width) for line in lines]


def _row_key(row: Any) -> tuple[int, str, str]:
    """An aggregate row's configuration: size, data point (its key) and method label."""
    return int(row["size"]), str(row["data"]), str(row["method_label"])


def _rank_order(metric: Metric, value: float) -> float:
    """A sort key for ``value`` of ``metric``: the best first, a missing one (NaN) last."""
    return math.inf if not math.isfinite(value) else metric.sign * value


def _comparison_table(original: Record, new: Record) -> Table:
    table = Table(title="Recorded vs re-run", box=box.SIMPLE_HEAD)
    for column in ("", "recorded", "re-run"):
        table.add_column(column, justify="right")
    table.add_row("status", str(original.status), str(new.status))
    task = task_of([original.task])
    for header, (key, spec, _) in _summary_columns(task).items():
        if key == task.validation.name:
            continue
        table.add_row(header, _fmt(_value(original, key), spec), _fmt(_value(new, key), spec))
    return table


def _list(console: Console) -> None:
    from l2obench.methods.base import method_registry as methods
    from l2obench.problems.base import problem_registry as problems
    from l2obench.suite import builtin_suites, load_suite
    from l2obench.tasks.base import get_task, task_registry

    table = Table(title="Task families")
    for column in ("name", "outputs", "metrics (↓ lower / ↑ higher is better)", "ranks by",
                   "selects by", "description"):
        table.add_column(column)
    for name in task_registry.names():
        task = get_task(name)
        metrics = "\n".join(f"{m.name} {m.arrow}" + (f" ({m.unit})" if m.unit else "")
                            for m in task.metrics)
        table.add_row(name, escape(task.output), metrics, task.rank_metric,
                      f"{task.validation.name} {task.validation.arrow}",
                      escape(task.description))
    console.print(table)

    table = Table(title="Problems")
    for column in ("name", "task", "size", "offers", "parameters", "description"):
        table.add_column(column)
    for name, cls in problems:
        params = escape("\n".join(f"{k}: {p.describe()}" for k, p in cls.params.items()))
        offers = "\n".join(sorted(cls.capabilities())) or "—"
        table.add_row(name, cls.task, cls.size_param, offers, params, escape(cls.description))
    console.print(table)

    table = Table(title="Methods")
    for column in ("name", "task", "available", "needs", "parameters", "description"):
        table.add_column(column)
    for name, method_cls in methods:
        missing = method_cls.missing_requirements()
        hint = escape(method_cls.install_hint())
        available = "[green]yes[/]" if not missing else f"[yellow]no[/]: {hint}"
        needs = "\n".join(sorted(method_cls.needs)) or "—"
        params = escape("\n".join(f"{k}: {p.describe()}"
                                  for k, p in method_cls.params.items()))
        table.add_row(name, method_cls.task, available, needs, params,
                      escape(method_cls.description))
    console.print(table)

    table = Table(title="Which method runs on which problem")
    table.add_column("method")
    problem_classes = list(problems)
    for name, _ in problem_classes:
        table.add_column(name)
    for name, method_cls in methods:
        cells = []
        for _, problem_cls in problem_classes:
            unmet = method_cls.unmet_needs(problem_cls)
            if method_cls.task != problem_cls.task:
                cells.append(f"[dim]no[/]: {problem_cls.task} family")
            else:
                cells.append("[green]yes[/]" if not unmet
                             else "[red]no[/]: needs " + ", ".join(unmet))
        table.add_row(name, *cells)
    console.print(table)

    table = Table(title="Suites")
    for column in ("name", "problem", "sizes", "methods"):
        table.add_column(column)
    table.add_column("file", overflow="fold")  # a path is never cut short
    for name, path in sorted(builtin_suites().items()):
        try:
            suite = load_suite(str(path))
        except L2OBenchError as exc:
            table.add_row(name, "[red]invalid[/]", escape(str(exc)), "", str(path))
            continue
        names = dict.fromkeys(s.name for s in suite.methods)  # a method with two entries once
        table.add_row(name, suite.problem, ", ".join(map(str, suite.sizes)), ", ".join(names),
                      str(path))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
