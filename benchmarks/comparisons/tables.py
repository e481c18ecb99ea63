"""The generated tables of ``benchmarks/results/comparisons.md``, rendered from the committed
JSON results.

    python -m benchmarks.comparisons.tables            # rewrite the page's generated blocks
    python -m benchmarks.comparisons.tables --check    # exit 1 if they differ from the JSON files

A generated block sits between two comments naming it::

    <!-- BEGIN generated: dys-vs-fpo-dys (python -m benchmarks.comparisons.tables) -->
    ...
    <!-- END generated: dys-vs-fpo-dys -->

``ratios-summary`` is every comparison's checks in one table; any other name is one comparison's
block (its provenance, checks, notes and tables), from the latest ``full``-profile result of
that comparison in ``benchmarks/results/``. Everything outside the blocks is prose and stays as
written; to show a new comparison, add its two comments where its block should go.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from .comparison import RESULTS_DIR, Check, Result, load_result, result_path

#: The page of the comparisons, where every generated block sits.
COMPARISONS_MD = RESULTS_DIR / "comparisons.md"

#: The block of every comparison's checks.
SUMMARY = "ratios-summary"

BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated: (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)"
    r"(?P<end><!-- END generated: (?P=name) -->)",
    re.DOTALL,
)


def latest_results(folder: Path = RESULTS_DIR) -> dict[str, Result]:
    """The latest ``full``-profile result of each comparison in ``folder``, by name."""
    latest: dict[str, Result] = {}
    for path in sorted(folder.glob("*.json")):
        result = load_result(path)
        if result.profile != "full":
            continue
        current = latest.get(result.comparison)
        if current is None or result.started > current.started:
            latest[result.comparison] = result
    return latest


def cell(value: float | int | str | None) -> str:
    """A table cell: floats to three significant digits (whole numbers and those of four digits
    or more without exponent), pipes escaped."""
    if value is None:
        text = "—"
    elif isinstance(value, float) and math.isfinite(value) and abs(value) >= 1000:
        text = f"{value:.0f}"
    elif isinstance(value, float):
        text = f"{value:.3g}"
    else:
        text = str(value)
    return text.replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[float | int | str | None]],
                   numeric: bool = True) -> list[str]:
    """``rows`` under ``columns``; numeric columns (all but the first) right-aligned."""
    align = ["---"] + [("---:" if numeric else "---")] * (len(columns) - 1)
    return [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def setting(value: object) -> str:
    """A profile's setting as written in Python (``(5, 20)``, ``{20: 2, 30: 1}``), from JSON."""
    if isinstance(value, list):
        return "(" + ", ".join(map(setting, value)) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {setting(v)}" for key, v in value.items()) + "}"
    return str(value)


def when(result: Result) -> str:
    """``2026-11-28 04:03–04:18 UTC``."""
    start, end = datetime.fromisoformat(result.started), datetime.fromisoformat(result.finished)
    last = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
    return f"{start:%Y-%m-%d %H:%M}–{last} UTC"


def loads(values: Sequence[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in values)


def provenance(result: Result) -> str:
    """Where, when and on what one result was measured, in one paragraph."""
    m = result.machine
    versions = ", ".join(f"{name} {version}" for name, version in m.versions.items())
    return (
        f"`{result_path(result, RESULTS_DIR).name}`: {when(result)} "
        f"({result.wall_s:.0f} s), load average {loads(result.load_before)} before and "
        f"{loads(result.load_after)} after (1, 5, 15 min); {m.cpu}, {m.cores} cores, PyTorch "
        f"threads {m.torch_threads}; Python {m.python}, {versions}; commit `{m.commit[:12]}`."
    )


def check_rows(checks: Sequence[Check]) -> list[list[float | int | str | None]]:
    return [[c.what, c.l2obench.text, c.reference.text, c.value_text, c.target.text, c.verdict]
            for c in checks]


def comparison_block(result: Result) -> str:
    """One comparison's block: provenance, settings, checks, notes, tables."""
    settings = ", ".join(f"{key} {setting(value)}" for key, value in result.settings.items())
    lines = [f"**{result.title}** ({result.profile} profile: {settings}).", "",
             provenance(result), ""]
    if result.error is not None:
        lines += [f"It could not run: `{result.error}`.", ""]
    lines += markdown_table(["check", "l2obench", "reference", "value", "target", "result"],
                            check_rows(result.checks), numeric=False)
    notes = [check for check in result.checks if check.note]
    if notes or result.notes:
        lines.append("")
        lines += [f"- {check.what}: {check.note}" for check in notes]
        lines += [f"- {note}" for note in result.notes]
    for table in result.tables:
        lines += ["", f"*{table.title}*", "", *markdown_table(table.columns, table.rows)]
    return "\n".join(lines) + "\n"


def summary_block(results: Mapping[str, Result]) -> str:
    """Every comparison's checks in one table, in the order of ``results``."""
    rows: list[list[float | int | str | None]] = []
    for name, result in results.items():
        if result.error is not None:
            rows.append([name, "(could not run)", result.error, "runs", "ERROR"])
        rows += [[name, c.what, c.value_text, c.target.text, c.verdict] for c in result.checks]
    lines = markdown_table(["comparison", "check", "value", "target", "result"], rows,
                           numeric=False)
    return "\n".join(lines) + "\n"


def render(text: str, results: Mapping[str, Result]) -> str:
    """``text`` with every generated block rendered anew from ``results``.

    The summary lists the comparisons in the order their blocks appear in ``text``.
    """
    names = [match["name"] for match in BLOCK.finditer(text)]
    missing = sorted(name for name in names if name != SUMMARY and name not in results)
    if missing:
        raise ValueError(f"no full-profile result for block(s) {', '.join(missing)}")
    unplaced = sorted(set(results) - set(names))
    if unplaced:
        raise ValueError(f"no block for {', '.join(unplaced)}: add its BEGIN/END comments")
    ordered = {name: results[name] for name in names if name != SUMMARY}

    def body(match: re.Match[str]) -> str:
        name = match["name"]
        rendered = (summary_block(ordered) if name == SUMMARY
                    else comparison_block(results[name]))
        return match["begin"] + "\n" + rendered + "\n" + match["end"]

    return BLOCK.sub(body, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.comparisons.tables",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 if the generated blocks are out of date")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR,
                        help="folder of the JSON results (default benchmarks/results/)")
    parser.add_argument("--file", type=Path, default=COMPARISONS_MD,
                        help="the Markdown file (default benchmarks/results/comparisons.md)")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    try:
        rendered = render(text, latest_results(args.results))
    except ValueError as exc:
        print(f"benchmarks.comparisons.tables: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if rendered != text:
            print(f"{args.file}: generated blocks out of date; run "
                  "python -m benchmarks.comparisons.tables", file=sys.stderr)
            return 1
        return 0
    args.file.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
