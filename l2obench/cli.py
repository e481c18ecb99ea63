"""The ``l2obench`` command: ``run`` a suite, ``list`` what is registered.

Input errors (unknown suite, method or parameter, a malformed suite file, a size out of range)
end with exit status 2 and one message; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from l2obench import __version__
from l2obench.errors import L2OBenchError
from l2obench.methods.base import method_registry as methods
from l2obench.problems.base import problem_registry as problems
from l2obench.runner import RunSummary, resolve_device, run_cells
from l2obench.store import ResultStore
from l2obench.suite import Cell, builtin_suites, expand, load_suite

EXIT_USAGE = 2
EXIT_CELLS_FAILED = 1
_STATUS_STYLE = {"ok": "green", "skipped": "yellow", "timeout": "yellow", "failed": "red",
                 "diverged": "red", "oom": "red"}


class UsageError(L2OBenchError):
    """A command-line value that is malformed."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-line message on bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
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
    return values


def _name_list(text: str) -> list[str]:
    values = [item.strip() for item in text.split(",") if item.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one name")
    return values


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
    run.add_argument("--seeds", type=_int_list, help="only these seeds, e.g. 0,1,2")
    run.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                     help="where methods train (default: cuda when visible, else cpu)")
    run.add_argument("--out", help="results folder (default: runs/<suite>)")

    commands.add_parser("list", help="show problems, methods and suites")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s", handlers=[RichHandler(show_path=False)])
    # Logs and pipes are read later in an editor: do not wrap them at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 140)
    try:
        if args.command == "run":
            return _run(args, console)
        _list(console)
        return 0
    except L2OBenchError as exc:
        Console(stderr=True).print(f"[bold red]l2obench: error:[/] {escape(str(exc))}",
                                  highlight=False)
        return EXIT_USAGE


def _run(args: argparse.Namespace, console: Console) -> int:
    suite = load_suite(args.suite, quick=args.quick)
    device = resolve_device(args.device)
    cells = expand(suite, device=device, sizes=args.sizes, seeds=args.seeds,
                   method_names=args.methods)
    store = ResultStore(args.out or f"runs/{suite.name}")
    console.print(f"[bold]{suite.name}[/]{' (quick)' if args.quick else ''}: {len(cells)} cells "
                  f"on {device} → {store.root}", highlight=False)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("cells", total=len(cells))

        def on_start(cell: Cell) -> None:
            progress.update(task, description=escape(cell.label))

        def on_finish(cell: Cell, record: dict[str, Any] | None) -> None:
            progress.console.print(_cell_line(cell, record), highlight=False)
            progress.advance(task)

        summary = run_cells(cells, store, on_start=on_start, on_finish=on_finish)

    console.print(_summary_table(summary))
    counts = {k: v for k, v in summary.counts().items() if v}
    parts = [f"{n} {status}" for status, n in counts.items()]
    if summary.already_done:
        parts.append(f"{len(summary.already_done)} already recorded")
    console.print(f"{len(cells)} cells: {', '.join(parts) or 'nothing to do'}. "
                  f"Records in {store.root}", highlight=False)
    failed = sum(n for status, n in counts.items() if status not in ("ok", "skipped"))
    return EXIT_CELLS_FAILED if failed else 0


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _cell_line(cell: Cell, record: dict[str, Any] | None) -> str:
    if record is None:
        return f"[dim]· {escape(cell.label)}: already recorded[/]"
    status = record["status"]
    style = _STATUS_STYLE.get(status, "white")
    line = f"[{style}]{status:>8}[/] {escape(cell.label)}"
    if record.get("norm_regret") is not None:
        line += (f"  regret {record['norm_regret']:.4f}  {record['epochs']} ep "
                 f"in {record['train_time_s']:.1f} s")
    if record.get("fwd_iters_mean") is not None:
        line += f"  fwd iters {record['fwd_iters_mean']:.0f}"
    if record.get("error"):
        line += f"  [dim]{escape(record['error'])}[/]"
    return line


def _summary_table(summary: RunSummary) -> Table:
    table = Table(title="Summary", box=box.SIMPLE_HEAD)
    label_width = min(40, max((len(r["method_label"]) for r in summary.written), default=6))
    for column in ("size", "method", "seed", "status", "regret", "test loss", "epochs",
                   "s/epoch", "peak MB", "fwd iters"):  # the record's columns, abridged
        if column == "method":
            table.add_column(column, min_width=label_width, overflow="fold")
        else:
            table.add_column(column, justify="right", overflow="fold")
    for r in summary.written:
        table.add_row(str(r["size"]), escape(r["method_label"]), str(r["seed"]),
                      f"[{_STATUS_STYLE.get(r['status'], 'white')}]{r['status']}[/]",
                      _fmt(r.get("norm_regret"), ".4f"), _fmt(r.get("test_loss"), ".4g"),
                      _fmt(r.get("epochs"), "d"), _fmt(r.get("time_per_epoch_s"), ".3g"),
                      _fmt(r.get("peak_mem_mb"), ".0f"), _fmt(r.get("fwd_iters_mean"), ".0f"))
    return table


def _list(console: Console) -> None:
    table = Table(title="Problems")
    for column in ("name", "size", "parameters", "description"):
        table.add_column(column)
    for name, cls in problems:
        params = escape("\n".join(f"{k}: {p.describe()}" for k, p in cls.params.items()))
        table.add_row(name, cls.size_param, params, escape(cls.description))
    console.print(table)

    table = Table(title="Methods")
    for column in ("name", "available", "parameters", "description"):
        table.add_column(column)
    for name, cls in methods:
        missing = cls.missing_requirements()
        hint = escape(cls.install_hint())
        available = "[green]yes[/]" if not missing else f"[yellow]no[/]: {hint}"
        params = escape("\n".join(f"{k}: {p.describe()}" for k, p in cls.params.items()))
        table.add_row(name, available, params, escape(cls.description))
    console.print(table)

    table = Table(title="Suites")
    for column in ("name", "problem", "sizes", "methods", "file"):
        table.add_column(column)
    for name, path in sorted(builtin_suites().items()):
        try:
            suite = load_suite(str(path))
        except L2OBenchError as exc:
            table.add_row(name, "[red]invalid[/]", escape(str(exc)), "", str(path))
            continue
        table.add_row(name, suite.problem, ", ".join(map(str, suite.sizes)),
                      ", ".join(s.name for s in suite.methods), str(path))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
