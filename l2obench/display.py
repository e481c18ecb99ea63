"""What the command line prints, within the terminal's width: durations, counts, cell lines.

Every line a run prints fits the terminal (a long cell label is shortened in the middle, an
error cut at the end, never wrapped); durations and sizes read in human units (``380 ms``,
``4.2 s``, ``3.5 min``); counts agree with their nouns (``1 cell``, ``2 cells``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from l2obench.params import format_value, readable_name
from l2obench.record import Cell, Record, Status
from l2obench.record import human_seconds as duration
from l2obench.tasks.base import task_of

#: How a status is coloured in the terminal.
STATUS_STYLE = {Status.OK: "green", Status.SKIPPED: "yellow", Status.TIMEOUT: "yellow",
                Status.FAILED: "red", Status.DIVERGED: "red", Status.OOM: "red"}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 cell``, ``3 cells`` (``plural`` for irregular nouns)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the middle replaced by ``…`` if it must be."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2 + (width - 1) % 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def cell_line(cell: Cell, record: Record, width: int, compact: str | None = None) -> Text:
    """One finished cell in one line of at most ``width`` characters.

    Status, then the label, then the measurements; an error comes last and is cut to what room
    is left. The method's name, the size and the seed are never shortened: where the line is
    too long the label drops the parameters every cell of the run shares (``compact``, the
    method label :func:`run_labels` gives), then measurements go but the regret, then the
    parameters left are shortened in the middle (the regret goes only where even ``name[…]``
    has no room).
    """
    status = f"{record.status:>8} "
    facts = []
    rank = task_of([record.task]).ranking()
    if record.metric(rank.name) is not None:
        facts.append(f"{rank.short_label} {record.metric(rank.name):.4f}")
    if record.epochs is not None and record.train_time_s is not None:
        facts.append(f"{count(record.epochs, 'epoch')} in {duration(record.train_time_s)}")
    if record.fwd_iters_mean is not None:
        facts.append(f"{record.fwd_iters_mean:.0f} fwd iters")

    def tail() -> str:
        return "".join(f"  {f}" for f in facts)

    method = cell.method_label
    if compact is not None and len(status) + len(short_label(cell)) + len(tail()) > width:
        method = compact
    # Measurements go (the least important first, the regret last) while the label does not
    # fit whole; the regret only where even the label's shortest form (``ltr[…]``) does not.
    while len(facts) > 1 and len(status) + len(short_label(cell, method)) + len(tail()) > width:
        facts.pop()
    least = short_label(cell, f"{cell.method}[…]" if method != cell.method else method)
    while facts and len(status) + len(least) + len(tail()) > width:
        facts.pop()
    room = max(12, width - len(status) - len(tail()))
    label = fit_label(cell, room, method)
    line = Text.from_markup(f"[{STATUS_STYLE.get(record.status, 'white')}]{status}[/]"
                            f"{escape(label)}{escape(tail())}")
    if record.error:
        left = width - len(line) - 2
        if left > 8:
            line.append("  " + shorten_end(record.error.splitlines()[0], left), style="dim")
    return line


def short_label(cell: Cell, method_label: str | None = None) -> str:
    """``k=3,deg=4 dys-jfb[lr=0.01] seed=0``: a cell without its problem's name (a run's lines
    follow a header that names the suite and its problem); ``method_label`` in place of the
    cell's own if given."""
    data = f",{cell.data_label}" if cell.data_label else ""
    return (f"{cell.size_param}={cell.size}{data} {method_label or cell.method_label} "
            f"seed={cell.seed}")


def fit_label(cell: Cell, width: int, method_label: str | None = None) -> str:
    """:func:`short_label` in at most ``width`` characters: the method's parameters shortened in
    the middle first (``ltr[kind=p…wise]``), its name, size and seed kept whole while they fit."""
    method = method_label or cell.method_label
    label = short_label(cell, method)
    if len(label) > width and method.startswith(cell.method + "[") and method.endswith("]"):
        inner = method[len(cell.method) + 1: -1]
        keep = max(1, len(inner) - (len(label) - width))
        label = short_label(cell, f"{cell.method}[{shorten(inner, keep)}]")
    return shorten(label, width)


def run_labels(cells: Sequence[Cell]) -> dict[str, str]:
    """Each cell's method label without the parameters that every cell of its method in
    ``cells`` shares (by cell id): what tells the run's cells apart in a narrow terminal."""
    from l2obench.selection import given_params

    entries = [(cell.method, given_params(cell.method, cell.method_label, cell.method_params))
               for cell in cells]
    labels, _ = compact_labels(entries)
    return {cell.cell_id: label for cell, label in zip(cells, labels, strict=True)}


def shorten_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at the end with ``…``."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


@dataclass(frozen=True)
class Column:
    """A column of a terminal table: its header, its cells (rich markup), how to justify it,
    and whether it may be left out when the terminal is too narrow (lowest priority first)."""

    header: str
    cells: list[str]
    justify: str = "right"
    priority: int = 0  # 0: always shown; larger numbers are dropped first
    shrink: bool = False  # shorten its cells (in the middle) rather than drop columns


def fit_table(title: str, columns: list[Column], width: int) -> tuple[Table, list[str]]:
    """A table of ``columns`` no wider than ``width``: optional columns dropped by priority,
    then the shrinkable columns' cells shortened in the middle; no cell ever wraps. Returns
    the table and the headers left out."""
    measurer = Console(width=10_000, file=io.StringIO())

    def build(cols: list[Column], shrink_to: int | None) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        for column in cols:
            table.add_column(column.header, justify=column.justify,  # type: ignore[arg-type]
                             no_wrap=True)
        for i in range(len(columns[0].cells) if columns else 0):
            row = []
            for column in cols:
                text = column.cells[i]
                plain = Text.from_markup(text).plain
                if column.shrink and shrink_to is not None and len(plain) > shrink_to:
                    text = escape(shorten(plain, shrink_to))
                row.append(text)
            table.add_row(*row)
        return table

    def needed(table: Table) -> int:
        return measurer.measure(table).maximum

    floor = 16  # a shortened label keeps this many characters at least
    kept, dropped = list(columns), []
    while needed(build(kept, floor)) > width and any(c.priority for c in kept):
        worst = max((c for c in kept if c.priority), key=lambda c: c.priority)
        kept.remove(worst)
        dropped.append(worst.header)
    shrink_to = None
    longest = max((len(Text.from_markup(c).plain) for col in kept if col.shrink
                   for c in col.cells), default=0)
    while needed(build(kept, shrink_to)) > width and (shrink_to or longest) > floor:
        shrink_to = (shrink_to or longest) - 1
    return build(kept, shrink_to), dropped


def compact_labels(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[list[str],
                                                                              list[str]]:
    """Method labels without the parameters that every entry of the same method shares, and
    notes naming those: one for what every method shares (``in every row: lr=0.01``), one per
    method for the rest (``in every row of dys-jfb: alpha=0.05, tol=0.01``).

    ``entries`` are ``(method, parameters the suite set)`` pairs, one per row.
    """
    shared: dict[str, set[tuple[str, str]]] = {}
    for method, given in entries:
        items = {(k, format_value(v)) for k, v in given.items()}
        shared[method] = shared[method] & items if method in shared else items
    labels = [readable_name(method, {k: v for k, v in given.items()
                                     if (k, format_value(v)) not in shared[method]})
              for method, given in entries]
    common = set.intersection(*shared.values()) if len(shared) > 1 else set()
    notes = [f"in every row: {_items(common)}"] if common else []
    notes += [f"in every row of {method}: {_items(items - common)}"
              for method, items in sorted(shared.items()) if items - common]
    return labels, notes


def _items(items: set[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(items))
