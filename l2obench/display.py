"""What the command line prints, within the terminal's width: durations, counts, cell lines.

Every line a run prints fits the terminal (a long cell label is shortened in the middle, an
error cut at the end, never wrapped); durations and sizes read in human units (``380 ms``,
``4.2 s``, ``3.5 min``); counts agree with their nouns (``1 cell``, ``2 cells``).
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from l2obench.record import Cell, Record, Status
from l2obench.record import human_seconds as duration

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


def cell_line(cell: Cell, record: Record, width: int) -> Text:
    """One finished cell in one line of at most ``width`` characters.

    Status, then the label (shortened first if the line is too long), then the measurements
    (the last ones dropped where even a shortened label leaves no room); an error comes last
    and is cut to what room is left.
    """
    status = f"{record.status:>8} "
    facts = []
    if record.norm_regret is not None:
        facts.append(f"regret {record.norm_regret:.4f}")
    if record.epochs is not None and record.train_time_s is not None:
        facts.append(f"{count(record.epochs, 'epoch')} in {duration(record.train_time_s)}")
    if record.fwd_iters_mean is not None:
        facts.append(f"{record.fwd_iters_mean:.0f} fwd iters")
    while facts and len(status) + 12 + sum(len(f) + 2 for f in facts) > width:
        facts.pop()  # the least important measurement first
    tail = "".join(f"  {f}" for f in facts)
    room = max(12, width - len(status) - len(tail))
    label = shorten(cell.label, room)
    line = Text.from_markup(f"[{STATUS_STYLE.get(record.status, 'white')}]{status}[/]"
                            f"{escape(label)}{escape(tail)}")
    if record.error:
        left = width - len(line) - 2
        if left > 8:
            line.append("  " + shorten_end(record.error.splitlines()[0], left), style="dim")
    return line


def shorten_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at the end with ``…``."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
